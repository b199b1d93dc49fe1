//! The status page: settings, counters and the latest decisions, every value escaped.

use std::fmt::Write;
use std::time::Duration;

use crate::{Recent, Settings};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn status(s: &Settings, uptime: Duration, counters: &serde_json::Value, recent: &[Recent]) -> String {
    let mut h = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nhc proxy</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}.no{color:#a00}.yes{color:#070}</style>\
         </head><body><h1>nhc proxy</h1>",
    );
    let _ = write!(
        h,
        "<p>Upstream <code>{}</code>, collection <code>{}</code>. Quorum <b>{}</b> of {} trusted key(s) in {} \
         group(s); on mismatch: {:?}; collection down: {:?}{}. Up {} s.</p>",
        esc(s.upstream.as_str()),
        esc(s.collection.as_str()),
        s.policy.quorum,
        s.trust.len(),
        s.trust.groups(),
        s.policy.on_mismatch,
        s.on_collection_error,
        if s.dry_run { "; <b>dry run</b>: everything is served" } else { "" },
        uptime.as_secs()
    );
    h.push_str("<h2>Counters</h2><table>");
    if let Some(map) = counters.as_object() {
        for (k, v) in map {
            let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v.to_string()));
        }
    }
    h.push_str("</table><h2>Latest decisions</h2><table><tr><th>time (unix)</th><th>path</th><th>verdict</th><th>agreed</th><th>mismatched</th></tr>");
    for r in recent {
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            r.at,
            esc(&r.path),
            if r.served { "yes" } else { "no" },
            esc(&r.verdict),
            esc(&r.agreed),
            esc(&r.mismatched)
        );
    }
    h.push_str("</table><p>JSON: <a href=\"status.json\">status.json</a></p></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(super::esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
