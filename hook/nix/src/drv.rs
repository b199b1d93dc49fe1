//! The parts of a `.drv` file (Nix's ATerm format) the client needs:
//! `Derive([outputs],[input drvs],[input sources],...)`.

use nhc_core::{DrvPath, OutputName, ParseError, StorePath};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// Every output with its path; `None` for a floating content-addressed output,
    /// whose path is only known after the build.
    pub outputs: Vec<(OutputName, Option<StorePath>)>,
    /// Input derivations with the outputs of each that the build uses.
    pub input_drvs: Vec<(DrvPath, Vec<OutputName>)>,
    pub input_srcs: Vec<StorePath>,
}

/// Why a `.drv` file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrvError {
    #[error("invalid derivation: expected `{expected}` at byte {pos}")]
    Expected { expected: &'static str, pos: usize },
    #[error("invalid derivation: expected `,` or `]` at byte {pos}")]
    ListSeparator { pos: usize },
    #[error("invalid derivation: unterminated string at byte {pos}")]
    Unterminated { pos: usize },
    #[error("invalid derivation: string is not UTF-8 at byte {pos}")]
    NotUtf8 { pos: usize },
    #[error("invalid derivation: no outputs at byte {pos}")]
    NoOutputs { pos: usize },
    /// A store path, derivation path or output name that is not valid.
    #[error("invalid derivation: {0}")]
    Value(#[from] ParseError),
}

struct P<'a> {
    s: &'a [u8],
    pos: usize,
}

impl P<'_> {
    fn lit(&mut self, l: &'static str) -> Result<(), DrvError> {
        if self.s[self.pos..].starts_with(l.as_bytes()) {
            self.pos += l.len();
            Ok(())
        } else {
            Err(DrvError::Expected { expected: l, pos: self.pos })
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn string(&mut self) -> Result<String, DrvError> {
        self.lit("\"")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(DrvError::Unterminated { pos: self.pos }),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = match self.s.get(self.pos + 1) {
                        None => return Err(DrvError::Unterminated { pos: self.pos }),
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
        String::from_utf8(out).map_err(|_| DrvError::NotUtf8 { pos: self.pos })
    }

    /// `[item,item,...]`
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T, DrvError>) -> Result<Vec<T>, DrvError> {
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
                _ => return Err(DrvError::ListSeparator { pos: self.pos }),
            }
        }
    }
}

/// Parses the outputs and inputs of a derivation; the rest of the file is not read.
pub fn parse(text: &[u8]) -> Result<Derivation, DrvError> {
    let mut p = P { s: text, pos: 0 };
    p.lit("Derive(")?;
    let outputs = p.list(|p| {
        p.lit("(")?;
        let name = OutputName::parse(&p.string()?)?;
        p.lit(",")?;
        let path = p.string()?;
        p.lit(",")?;
        p.string()?; // hash algorithm (fixed-output and CA derivations)
        p.lit(",")?;
        p.string()?; // hash
        p.lit(")")?;
        let path = if path.is_empty() { None } else { Some(StorePath::parse(&path)?) };
        Ok((name, path))
    })?;
    p.lit(",")?;
    let input_drvs = p.list(|p| {
        p.lit("(")?;
        let drv = DrvPath::parse(&p.string()?)?;
        p.lit(",")?;
        let outs = p.list(|p| Ok(OutputName::parse(&p.string()?)?))?;
        p.lit(")")?;
        Ok((drv, outs))
    })?;
    p.lit(",")?;
    let input_srcs = p.list(|p| Ok(StorePath::parse(&p.string()?)?))?;
    p.lit(",")?;
    if outputs.is_empty() {
        return Err(DrvError::NoOutputs { pos: p.pos });
    }
    Ok(Derivation { outputs, input_drvs, input_srcs })
}

/// The name of the output of `drv` whose path is `out` ([`DrvPath::output_name_of`]).
pub fn output_name_from_path(drv: &DrvPath, out: &StorePath) -> Option<OutputName> {
    drv.output_name_of(out)
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
        assert_eq!(output_name_from_path(&drv, &out).unwrap().as_str(), "out");
        assert_eq!(output_name_from_path(&drv, &dev).unwrap().as_str(), "dev");
        assert_eq!(output_name_from_path(&drv, &other), None);
    }
}
