//! The `.drv` (ATerm) parser: no panic on any bytes; what parses, written back in
//! canonical ATerm, parses to the same derivation; output names derived from paths
//! are valid names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhc_nix::drv::{output_name_from_path, parse, Derivation};

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", items.iter().map(f).collect::<Vec<_>>().join(","))
}

fn render(d: &Derivation) -> String {
    let outputs = list(&d.outputs, |(name, path)| {
        let path = path.as_ref().map_or("", |p| p.as_str());
        format!("({},{},\"\",\"\")", quoted(name.as_str()), quoted(path))
    });
    let input_drvs =
        list(&d.input_drvs, |(drv, outs)| format!("({},{})", quoted(drv.as_str()), list(outs, |o| quoted(o.as_str()))));
    let input_srcs = list(&d.input_srcs, |p| quoted(p.as_str()));
    format!("Derive({outputs},{input_drvs},{input_srcs},\"x86_64-linux\",\"/bin/sh\",[],[])")
}

fuzz_target!(|data: &[u8]| {
    let d = match parse(data) {
        Ok(d) => d,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(!d.outputs.is_empty());
    let text = render(&d);
    assert_eq!(parse(text.as_bytes()).as_ref(), Ok(&d), "{text}");
    for (drv, _) in &d.input_drvs {
        for (name, path) in &d.outputs {
            if let Some(path) = path {
                if let Some(derived) = output_name_from_path(drv, path) {
                    // `out` is the bare name; any other output is `<name>-<output>`.
                    let expected = if derived.as_str() == "out" {
                        drv.as_store_path().name().trim_end_matches(".drv").to_owned()
                    } else {
                        format!("{}-{derived}", drv.as_store_path().name().trim_end_matches(".drv"))
                    };
                    assert!(path.name() == expected, "{name}: {path} from {drv}");
                }
            }
        }
    }
});
