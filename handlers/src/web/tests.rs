use maud::html;
use nhc_core::{ReproStatus, Summary};

use super::*;

#[test]
fn numbers_shares_and_times_read_well() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    assert_eq!(percent(1, 3), "33.3%");
    assert_eq!(percent(19_999, 20_000), "99.9%");
    assert_eq!(percent(5, 0), "—");
    let h = 3_600_000_000;
    assert_eq!(relative(0, 3 * h), "3 hours ago");
    assert_eq!(relative(0, h / 60), "1 minute ago");
    assert_eq!(relative(0, 10), "just now");
    assert_eq!(relative(0, 49 * h), "2 days ago");
    assert_eq!(relative(5 * h, 0), "in the future");
    assert_eq!(bytes(10), "10 B");
    assert_eq!(bytes(2048), "2.0 KiB (2,048 bytes)");
    let t = time(1_795_616_418_500_000, 1_795_616_418_500_000 + 2 * h).into_string();
    assert!(t.contains("UTC") && t.contains("2 hours ago") && t.contains("datetime=\""), "{t}");
}

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(qs("a b&c=<d>"), "a%20b%26c%3D%3Cd%3E");
    assert_eq!(qs("hello-2.12_x~"), "hello-2.12_x~");
}

/// What a submitter or uploader wrote never becomes markup: maud escapes it, in text
/// and in attributes.
#[test]
fn hostile_text_is_escaped_in_text_and_attributes() {
    let hostile = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>&amp;";
    let page = layout(hostile, html! { p.description { (hostile) } input value=(hostile); }).into_string();
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
    assert!(page.contains("&amp;amp;"), "{page}");
    // The only script is the stylesheet's neighbour, from this origin.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(page.contains("<script src=\"/static/app.js\" defer></script>"), "{page}");
}

#[test]
fn statuses_show_a_word_not_only_a_colour() {
    for st in ReproStatus::ALL {
        let b = status_badge(st).into_string();
        assert!(b.contains(status_label(st)), "{b}");
        assert!(b.contains(&format!("st-{}", st.as_str())), "{b}");
    }
}

#[test]
fn charts_are_well_formed_svg() {
    let s = Summary { reproduced: 3, partially_reproduced: 1, not_reproduced: 1, one_builder: 0, no_builds: 5 };
    let bar = charts::summary_bar(&s).into_string();
    // Every shape closed (inline SVG in HTML needs explicit end tags), one per status present.
    assert_eq!(bar.matches("<rect").count(), 4, "{bar}");
    assert_eq!(bar.matches("<rect").count(), bar.matches("</rect>").count(), "{bar}");
    assert!(bar.contains("width=\"300\"") && bar.contains("width=\"500\""), "{bar}");
    assert!(bar.contains("reproduced: <strong>3</strong> (30.0%)"), "{bar}");
    let empty = charts::summary_bar(&Summary::default()).into_string();
    assert_eq!(empty.matches("<rect").count(), 1, "{empty}");
    let points: Vec<(String, Summary)> = (0..3).map(|i| (format!("r{i}"), s)).collect();
    let trend = charts::trend(&points).into_string();
    assert_eq!(trend.matches("<g>").count(), 3, "{trend}");
    assert_eq!(trend.matches("<rect").count(), trend.matches("</rect>").count());
    let spark = charts::sparkline(&[0.1, 0.5, 1.0]).into_string();
    assert!(spark.contains("<polyline points=\"0,20 60,12 120,2\""), "{spark}");
    assert!(charts::sparkline(&[0.5]).into_string().contains("<circle"));
    assert!(!charts::sparkline(&[]).into_string().contains("<circle"));
    let act = charts::activity(&[("2026-11-29".into(), 2), ("2026-11-30".into(), 4)]).into_string();
    assert_eq!(act.matches("<rect").count(), 2, "{act}");
}

/// The pages are served beside the API without being in its document, and no page
/// shadows an API route (merging would panic).
#[test]
fn pages_are_routed_but_not_documented() {
    let _ = crate::api::router_for_tests();
    let doc = crate::api::openapi().to_json().unwrap();
    for page in ["\"/\"", "\"/outputs/{basename}\"", "\"/jobsets/{name}/{rev}\"", "\"/builders/{name}\"", "\"/search\""]
    {
        assert!(!doc.contains(&format!("{page}:")), "{page} is in the API document");
    }
}
