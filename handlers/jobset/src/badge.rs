//! `GET /v1/jobsets/{name}/badge.svg`: a small two-part badge like shields.io's,
//! `reproduced | NN%`, coloured by the share.

use nhc_core::Summary;

use crate::summary::reproduced_percent;

/// The colour of a reproduced share: the shields.io palette.
pub fn colour(percent: Option<u8>) -> &'static str {
    match percent {
        None => "#9f9f9f",               // lightgrey: no evaluation, or no paths
        Some(100) => "#4c1",             // brightgreen
        Some(p) if p >= 90 => "#97ca00", // green
        Some(p) if p >= 75 => "#a4a61d", // yellowgreen
        Some(p) if p >= 50 => "#dfb317", // yellow
        Some(p) if p >= 25 => "#fe7d37", // orange
        Some(_) => "#e05d44",            // red
    }
}

/// The badge of a jobset whose latest evaluation has `summary` (`None`: none yet).
pub fn badge_svg(summary: Option<&Summary>) -> String {
    let percent = summary.and_then(reproduced_percent);
    let message = match percent {
        Some(p) => format!("{p}%"),
        None => "no data".to_owned(),
    };
    badge("reproduced", &message, colour(percent))
}

/// Escapes text for SVG content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Width in pixels of `s` in 11px Verdana, roughly (digits and lower case ~7px).
fn text_width(s: &str) -> u32 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '!' | '\'' | '|' => 4,
            'f' | 't' | 'r' | ' ' => 5,
            'm' | 'w' | '%' | 'M' | 'W' => 11,
            c if c.is_ascii_uppercase() => 8,
            _ => 7,
        })
        .sum()
}

/// A flat badge with `label` on grey and `message` on `colour` (a `#rgb`/`#rrggbb`).
pub fn badge(label: &str, message: &str, colour: &str) -> String {
    let (lw, mw) = (text_width(label) + 10, text_width(message) + 10);
    let w = lw + mw;
    let (label, message) = (escape(label), escape(message));
    let colour =
        if colour.starts_with('#') && colour[1..].bytes().all(|b| b.is_ascii_hexdigit()) { colour } else { "#9f9f9f" };
    let (lx, mx) = (lw * 5, (lw + mw / 2) * 10);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{colour}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110"><text x="{lx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{label}</text><text x="{lx}" y="140" transform="scale(.1)">{label}</text><text x="{mx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{message}</text><text x="{mx}" y="140" transform="scale(.1)">{message}</text></g></svg>"##
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(reproduced: u64, other: u64) -> Summary {
        Summary { reproduced, no_builds: other, ..Summary::default() }
    }

    #[test]
    fn message_and_colour_by_threshold() {
        for (r, o, text, col) in [
            (10, 0, "100%", "#4c1"),
            (999, 1, "99%", "#97ca00"),
            (9, 1, "90%", "#97ca00"),
            (3, 1, "75%", "#a4a61d"),
            (1, 1, "50%", "#dfb317"),
            (1, 3, "25%", "#fe7d37"),
            (0, 5, "0%", "#e05d44"),
        ] {
            let svg = badge_svg(Some(&summary(r, o)));
            assert!(svg.contains(&format!(">{text}</text>")), "{text}: {svg}");
            assert!(svg.contains(&format!(r#"fill="{col}""#)), "{text}: {svg}");
            assert!(svg.contains(&format!(r#"aria-label="reproduced: {text}""#)));
        }
        let none = badge_svg(None);
        assert!(none.contains(">no data</text>") && none.contains("#9f9f9f"));
        assert_eq!(badge_svg(Some(&Summary::default())), none);
    }

    #[test]
    fn text_is_escaped_and_the_svg_well_formed() {
        let svg = badge("<a&b>\"'", "x\u{7}y", "red\"/><script>");
        assert!(!svg.contains("<a&b>") && svg.contains("&lt;a&amp;b&gt;&quot;&#39;"), "{svg}");
        assert!(svg.contains(">xy</text>") && !svg.contains("<script>"), "{svg}");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        // Every tag opened is closed (a crude check of well-formedness).
        let opens = svg.matches("<text").count();
        assert_eq!(opens, svg.matches("</text>").count());
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
        // Wider messages make wider badges.
        let w = |s: &str| badge("reproduced", s, "#4c1").split('"').nth(3).unwrap().parse::<u32>().unwrap();
        assert!(w("100%") > w("0%"));
    }
}
