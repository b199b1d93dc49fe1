//! The status page: settings, counters and the latest decisions. maud escapes every
//! value (as on the server's web pages): paths and verdicts come from upstreams.

use std::time::Duration;

use maud::{html, Markup, DOCTYPE};

use crate::{Recent, Settings};

const STYLE: &str = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
    td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}.no{color:#a00}.yes{color:#070}";

pub(crate) fn status(s: &Settings, uptime: Duration, counters: &serde_json::Value, recent: &[Recent]) -> String {
    let page: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "nhc proxy" } style { (STYLE) } }
            body {
                h1 { "nhc proxy" }
                p {
                    "Upstream " code { (s.upstream.as_str()) } ", collection " code { (s.collection.as_str()) } ". "
                    "Quorum " b { (s.policy.quorum) } " of " (s.trust.len()) " trusted key(s) in "
                    (s.trust.groups()) " group(s); on mismatch: " (format!("{:?}", s.policy.on_mismatch))
                    "; collection down: " (format!("{:?}", s.on_collection_error))
                    @if s.dry_run { "; " b { "dry run" } ": everything is served" }
                    ". Up " (uptime.as_secs()) " s."
                }
                h2 { "Counters" }
                table {
                    @if let Some(map) = counters.as_object() {
                        @for (k, v) in map { tr { th { (k) } td { (v.to_string()) } } }
                    }
                }
                h2 { "Latest decisions" }
                table {
                    tr { th { "time (unix)" } th { "path" } th { "verdict" } th { "agreed" } th { "mismatched" } }
                    @for r in recent {
                        tr {
                            td { (r.at) }
                            td { code { (r.path) } }
                            td class=(if r.served { "yes" } else { "no" }) { (r.verdict) }
                            td { (r.agreed) }
                            td { (r.mismatched) }
                        }
                    }
                }
                p { "JSON: " a href="status.json" { "status.json" } }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OnMismatch, Policy, Trust};

    #[test]
    fn values_from_upstreams_are_escaped() {
        let key = "test-1:p1hqZLOxS4y/qQjWxzuGJ6Y3ILHA5bsSvRhDdQWoqsg=".parse().unwrap();
        let trust = Trust::new(vec![key], &[]).unwrap();
        let s = Settings::new(
            "http://up.example/",
            "http://c.example/",
            trust,
            Policy { quorum: 1, on_mismatch: OnMismatch::Refuse },
        )
        .unwrap();
        let hostile = "<script>alert(1)</script>&\"'";
        let recent = [Recent {
            at: 1,
            path: hostile.into(),
            verdict: hostile.into(),
            served: false,
            agreed: hostile.into(),
            mismatched: String::new(),
        }];
        let counters = serde_json::json!({ hostile: hostile });
        let page = status(&s, Duration::from_secs(3), &counters, &recent);
        assert!(!page.contains("<script>"), "{page}");
        assert_eq!(page.matches("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;").count(), 4, "{page}");
        assert!(page.contains("Quorum <b>1</b> of 1 trusted key(s)"), "{page}");
        assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"), "{page}");
    }
}
