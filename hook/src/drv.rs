//! The parts of a `.drv` file (Nix's ATerm format) the hook needs:
//! `Derive([outputs],[input drvs],[input sources],...)`.

use nhc_core::{DrvPath, OutputName, StorePath};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// Every output with its path; `None` for a floating content-addressed output,
    /// whose path is only known after the build.
    pub outputs: Vec<(OutputName, Option<StorePath>)>,
    /// Input derivations with the outputs of each that the build uses.
    pub input_drvs: Vec<(DrvPath, Vec<OutputName>)>,
    pub input_srcs: Vec<StorePath>,
}

struct P<'a> {
    s: &'a [u8],
    pos: usize,
}

impl P<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("invalid derivation: {what} at byte {}", self.pos))
    }

    fn lit(&mut self, l: &str) -> Result<(), String> {
        if self.s[self.pos..].starts_with(l.as_bytes()) {
            self.pos += l.len();
            Ok(())
        } else {
            self.err(&format!("expected `{l}`"))
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn string(&mut self) -> Result<String, String> {
        self.lit("\"")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = match self.s.get(self.pos + 1) {
                        None => return self.err("unterminated string"),
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(&c) => c,
                    };
                    out.push(c);
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).or_else(|_| self.err("string is not UTF-8"))
    }

    /// `[item,item,...]`
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        self.lit("[")?;
        let mut out = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(out);
                }
                _ => return self.err("expected `,` or `]`"),
            }
        }
    }
}

fn store_path(s: &str) -> Result<StorePath, String> {
    StorePath::parse(s).map_err(|e| format!("invalid derivation: {e}"))
}

fn output_name(s: &str) -> Result<OutputName, String> {
    OutputName::parse(s).map_err(|e| format!("invalid derivation: {e}"))
}

/// Parses the outputs and inputs of a derivation; the rest of the file is not read.
pub fn parse(text: &[u8]) -> Result<Derivation, String> {
    let mut p = P { s: text, pos: 0 };
    p.lit("Derive(")?;
    let outputs = p.list(|p| {
        p.lit("(")?;
        let name = output_name(&p.string()?)?;
        p.lit(",")?;
        let path = p.string()?;
        p.lit(",")?;
        p.string()?; // hash algorithm (fixed-output and CA derivations)
        p.lit(",")?;
        p.string()?; // hash
        p.lit(")")?;
        let path = if path.is_empty() { None } else { Some(store_path(&path)?) };
        Ok((name, path))
    })?;
    p.lit(",")?;
    let input_drvs = p.list(|p| {
        p.lit("(")?;
        let drv = p.string()?;
        let drv = DrvPath::parse(&drv).map_err(|e| format!("invalid derivation: {e}"))?;
        p.lit(",")?;
        let outs = p.list(|p| output_name(&p.string()?))?;
        p.lit(")")?;
        Ok((drv, outs))
    })?;
    p.lit(",")?;
    let input_srcs = p.list(|p| store_path(&p.string()?))?;
    p.lit(",")?;
    if outputs.is_empty() {
        return p.err("no outputs");
    }
    Ok(Derivation { outputs, input_drvs, input_srcs })
}

/// The output name Nix gives a path built from `drv`: `out` for `<name>`, `dev`
/// for `<name>-dev`. Used only when the `.drv` itself cannot be read.
pub fn guess_output_name(drv: &DrvPath, out: &StorePath) -> Option<OutputName> {
    let drv_name = drv.as_store_path().name().strip_suffix(".drv")?;
    let out_name = out.name();
    if out_name == drv_name {
        return OutputName::parse("out").ok();
    }
    OutputName::parse(out_name.strip_prefix(drv_name)?.strip_prefix('-')?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = r#"Derive([("dev","/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-multi-dev","",""),("out","/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi","","")],[("/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv",["out"])],["/nix/store/hlns6vw3bk57jcq3zq72a46vw5yy8wzs-tree"],"x86_64-linux","/bin/sh",["-c","mkdir -p $out/bin $dev/include; echo \"x\\ny\" > $out"],[("dev","/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-multi-dev"),("name","multi")])"#;

    #[test]
    fn parses_outputs_and_inputs() {
        let d = parse(MULTI.as_bytes()).unwrap();
        let names: Vec<&str> = d.outputs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["dev", "out"]);
        assert_eq!(d.outputs[1].1.as_ref().unwrap().as_str(), "/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi");
        assert_eq!(d.input_drvs.len(), 1);
        assert_eq!(d.input_drvs[0].1[0].as_str(), "out");
        assert_eq!(d.input_srcs[0].name(), "tree");
    }

    #[test]
    fn floating_outputs_and_errors() {
        let ca = r#"Derive([("out","","r:sha256","")],[],[],"x86_64-linux","/bin/sh",[],[])"#;
        assert_eq!(parse(ca.as_bytes()).unwrap().outputs[0].1, None);
        for bad in [
            "",
            "Derive(",
            "Derive([],[],[],",
            r#"Derive([("out","/tmp/x","","")],[],[],"#,
            r#"Derive([("out","/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi","","")],[],[]"#,
            r#"Derive([("o/t","/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi","","")],[],[],"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn output_names_from_paths() {
        let drv = DrvPath::parse("/nix/store/47zvzz4hqip4gfnfpvz1zrvi7bydmnqg-multi.drv").unwrap();
        let out = StorePath::parse("/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi").unwrap();
        let dev = StorePath::parse("/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-multi-dev").unwrap();
        let other = StorePath::parse("/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-other").unwrap();
        assert_eq!(guess_output_name(&drv, &out).unwrap().as_str(), "out");
        assert_eq!(guess_output_name(&drv, &dev).unwrap().as_str(), "dev");
        assert_eq!(guess_output_name(&drv, &other), None);
    }
}
