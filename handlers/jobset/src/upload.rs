//! The body of `PUT /v1/jobsets/{name}/evaluations/{rev}`, in any of its formats, into
//! an [`Upload`]: distinct items (first seen first) and dependency edges.
//!
//! The format is chosen by `Content-Type`, then by content: `application/json` (and
//! `*+json`) is JSON, `text/plain` is a path list unless it starts with `{`; without a
//! useful type (none, `application/octet-stream`, or curl's default
//! `application/x-www-form-urlencoded`) a body starting with `{` is JSON and anything
//! else a path list. JSON with `"bomFormat": "CycloneDX"` is an SBOM, with `"paths"` a
//! path list, and lila's upload body `{"git_revision", "definition": <SBOM>}` is
//! unwrapped. Anything else (XML SBOMs included) is refused.

use std::collections::{HashMap, HashSet};

use nhc_core::jobset::{Edge, EvaluationItem, MAX_EVALUATION_EDGES, MAX_EVALUATION_PATHS, MAX_UPLOAD_BYTES};
use nhc_core::{DrvPath, OutputName, StorePath};
use serde::Deserialize;
use serde_json::Value;

use crate::UploadError;

/// The formats of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Store paths, one a line (what `nix-store -qR` prints).
    PlainText,
    /// `{"paths": [...]}`.
    PathsJson,
    /// A CycloneDX JSON SBOM (sbomnix, bombon, nix-build-sbom).
    CycloneDx,
}

/// A parsed upload: every path once, in the order first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub format: Format,
    pub items: Vec<EvaluationItem>,
    /// Sorted, without duplicates or self-edges; indices into `items`.
    pub edges: Vec<Edge>,
    /// SBOM components that name no output path (sources given only as a `.drv`,
    /// non-Nix components): not errors, but worth telling the uploader.
    pub skipped_components: usize,
}

/// What a `Content-Type` says about the body.
enum Declared {
    Json,
    Text,
    Unknown,
}

fn declared(content_type: Option<&str>) -> Result<Declared, UploadError> {
    let Some(ct) = content_type else { return Ok(Declared::Unknown) };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "" | "application/octet-stream" | "application/x-www-form-urlencoded" => Ok(Declared::Unknown),
        "text/plain" => Ok(Declared::Text),
        "application/json" | "text/json" => Ok(Declared::Json),
        m if m.starts_with("application/") && m.ends_with("+json") => Ok(Declared::Json),
        _ => Err(UploadError::UnsupportedMediaType(ct.chars().take(100).collect())),
    }
}

fn starts_with_brace(body: &str) -> bool {
    body.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']).starts_with('{')
}

/// Parses an upload whose `Content-Type` header is `content_type`.
pub fn parse_upload(content_type: Option<&str>, body: &[u8]) -> Result<Upload, UploadError> {
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(UploadError::BodyTooLarge { max: MAX_UPLOAD_BYTES });
    }
    let declared = declared(content_type)?;
    let text = std::str::from_utf8(body).map_err(|_| UploadError::NotUtf8)?;
    let json = match declared {
        Declared::Json => true,
        Declared::Text | Declared::Unknown => starts_with_brace(text),
    };
    if json {
        parse_json(text.trim_start_matches('\u{feff}'))
    } else {
        parse_plain(text)
    }
}

/// Collects items, merging what later mentions of a path add.
struct Items {
    items: Vec<EvaluationItem>,
    index: HashMap<StorePath, u32>,
}

impl Items {
    fn new() -> Self {
        Items { items: Vec::new(), index: HashMap::new() }
    }

    /// Adds `item` (or completes the one already there); returns its index.
    fn add(&mut self, mut item: EvaluationItem) -> Result<u32, UploadError> {
        if item.output_name.is_none() {
            if let Some(d) = &item.drv_path {
                item.output_name = output_name_from_path(d, &item.path);
            }
        }
        if let Some(&i) = self.index.get(&item.path) {
            let have = &mut self.items[i as usize];
            if have.drv_path.is_none() {
                have.drv_path = item.drv_path;
            }
            if have.output_name.is_none() {
                have.output_name = item.output_name;
            }
            return Ok(i);
        }
        if self.items.len() >= MAX_EVALUATION_PATHS {
            return Err(UploadError::TooManyPaths { max: MAX_EVALUATION_PATHS });
        }
        let i = self.items.len() as u32;
        self.index.insert(item.path.clone(), i);
        self.items.push(item);
        Ok(i)
    }

    fn finish(self, format: Format, edges: Vec<Edge>, skipped_components: usize) -> Result<Upload, UploadError> {
        if self.items.is_empty() {
            return Err(UploadError::NoPaths);
        }
        Ok(Upload { format, items: self.items, edges, skipped_components })
    }
}

/// The output name of `drv` whose path is `out`, by Nix's rule for output path names:
/// `<name>` for `out`, `<name>-<output>` for any other. `None` when it does not apply.
pub fn output_name_from_path(drv: &DrvPath, out: &StorePath) -> Option<OutputName> {
    let drv_name = drv.as_store_path().name().strip_suffix(".drv")?;
    let out_name = out.name();
    if out_name == drv_name {
        return OutputName::parse("out").ok();
    }
    OutputName::parse(out_name.strip_prefix(drv_name)?.strip_prefix('-')?).ok()
}

/// An output path: a store path that is not a derivation.
fn output_path(s: &str, at: impl Fn() -> String) -> Result<StorePath, UploadError> {
    let p = StorePath::parse(s).map_err(|source| UploadError::InvalidPath { at: at(), source })?;
    if p.is_derivation() {
        return Err(UploadError::Derivation { at: at(), path: p.to_string() });
    }
    Ok(p)
}

fn drv_path(s: &str, at: impl Fn() -> String) -> Result<DrvPath, UploadError> {
    DrvPath::parse(s).map_err(|source| UploadError::InvalidDrvPath { at: at(), source })
}

fn output_name(s: &str, at: impl Fn() -> String) -> Result<OutputName, UploadError> {
    OutputName::parse(s).map_err(|source| UploadError::InvalidOutputName { at: at(), source })
}

/// One store path a line; blank lines and `#` comments are ignored, and so is the
/// whitespace around a path (`\r\n` line ends included).
fn parse_plain(text: &str) -> Result<Upload, UploadError> {
    let mut items = Items::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let p = output_path(line, || format!("line {}", n + 1))?;
        items.add(EvaluationItem::bare(p))?;
    }
    items.finish(Format::PlainText, Vec::new(), 0)
}

/// Any JSON upload: the fields that tell the formats apart. Unknown fields are ignored
/// (SBOMs carry many).
#[derive(Deserialize)]
struct AnyJson {
    #[serde(rename = "bomFormat", default)]
    bom_format: Option<Value>,
    #[serde(default)]
    paths: Option<Value>,
    /// lila's `{"git_revision", "definition": <SBOM>}`.
    #[serde(default)]
    definition: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    components: Option<Value>,
    #[serde(default)]
    dependencies: Option<Value>,
}

fn parse_json(text: &str) -> Result<Upload, UploadError> {
    let v: Value = serde_json::from_str(text).map_err(|e| UploadError::MalformedJson(e.to_string()))?;
    let Value::Object(_) = v else {
        return Err(UploadError::UnknownFormat("a JSON upload must be an object".into()));
    };
    let mut any: AnyJson = serde_json::from_value(v).map_err(|e| UploadError::MalformedJson(e.to_string()))?;
    if any.bom_format.is_none() && any.paths.is_none() {
        if let Some(def @ Value::Object(_)) = any.definition.take() {
            any = serde_json::from_value(def).map_err(|e| UploadError::MalformedJson(e.to_string()))?;
        }
    }
    match (&any.bom_format, &any.paths) {
        (Some(Value::String(f)), _) if f == "CycloneDX" => parse_cyclonedx(any),
        (Some(f), _) => Err(UploadError::UnknownFormat(format!("bomFormat {f}: only CycloneDX SBOMs are read"))),
        (None, Some(_)) => parse_paths_json(any.paths.unwrap_or(Value::Null)),
        (None, None) => Err(UploadError::UnknownFormat(
            "JSON without \"paths\" or \"bomFormat\": expected {\"paths\": [...]} or a CycloneDX SBOM".into(),
        )),
    }
}

/// `{"paths": [...]}`: each a store path, or `{"path", "drv_path", "output_name"}`.
fn parse_paths_json(paths: Value) -> Result<Upload, UploadError> {
    let Value::Array(list) = paths else {
        return Err(UploadError::MalformedJson("\"paths\" must be an array".into()));
    };
    let mut items = Items::new();
    for (i, entry) in list.into_iter().enumerate() {
        let at = || format!("paths[{i}]");
        let item = match entry {
            Value::String(s) => EvaluationItem::bare(output_path(&s, at)?),
            Value::Object(mut o) => {
                let text = |o: &mut serde_json::Map<String, Value>, key: &str| -> Result<Option<String>, UploadError> {
                    match o.remove(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s)),
                        Some(_) => Err(UploadError::MalformedJson(format!("paths[{i}].{key} must be a string"))),
                    }
                };
                let path = text(&mut o, "path")?
                    .ok_or_else(|| UploadError::MalformedJson(format!("paths[{i}] has no \"path\"")))?;
                let path = output_path(&path, at)?;
                let drv = text(&mut o, "drv_path")?.map(|d| drv_path(&d, || format!("paths[{i}].drv_path")));
                let name = text(&mut o, "output_name")?.map(|n| output_name(&n, || format!("paths[{i}].output_name")));
                EvaluationItem { path, drv_path: drv.transpose()?, output_name: name.transpose()? }
            }
            _ => {
                return Err(UploadError::MalformedJson(format!(
                    "paths[{i}] must be a store path or an object with \"path\""
                )))
            }
        };
        items.add(item)?;
    }
    items.finish(Format::PathsJson, Vec::new(), 0)
}

/// What the SBOM says about one component.
#[derive(Default)]
struct Nix {
    out_paths: Vec<String>,
    drv_path: Option<String>,
    output: Option<String>,
}

/// The `nix:*` properties of a component (`properties: [{"name", "value"}]`).
fn nix_properties(component: &serde_json::Map<String, Value>, at: &str) -> Result<Nix, UploadError> {
    let mut nix = Nix::default();
    let props = match component.get("properties") {
        None | Some(Value::Null) => return Ok(nix),
        Some(Value::Array(p)) => p,
        Some(_) => return Err(UploadError::MalformedSbom(format!("{at}.properties must be an array"))),
    };
    for (j, p) in props.iter().enumerate() {
        let Value::Object(p) = p else {
            return Err(UploadError::MalformedSbom(format!("{at}.properties[{j}] must be an object")));
        };
        let Some(Value::String(name)) = p.get("name") else {
            return Err(UploadError::MalformedSbom(format!("{at}.properties[{j}] has no \"name\"")));
        };
        if !name.starts_with("nix:") {
            continue;
        }
        let value = match p.get("value") {
            Some(Value::String(v)) => v.clone(),
            _ if matches!(name.as_str(), "nix:out_path" | "nix:output_path" | "nix:drv_path" | "nix:output") => {
                return Err(UploadError::MalformedSbom(format!(
                    "{at}.properties[{j}] ({name}) has no string \"value\""
                )))
            }
            _ => continue,
        };
        match name.as_str() {
            // sbomnix writes one nix:output_path per output; nix-build-sbom (lila) nix:out_path.
            "nix:out_path" | "nix:output_path" => nix.out_paths.push(value),
            "nix:drv_path" => nix.drv_path = Some(value),
            "nix:output" => nix.output = Some(value),
            _ => {}
        }
    }
    Ok(nix)
}

/// A CycloneDX JSON SBOM as the Nix SBOM tools write it: every component (and
/// `metadata.component`, the root; nested `components` too) with `nix:out_path` or
/// `nix:output_path` properties is one item per output path, with `nix:drv_path` and
/// `nix:output` when given. A component without them is skipped, unless its `bom-ref`
/// is itself an output path or its basename (older lila reports and bombon name
/// components so).
/// `dependencies[].ref`/`dependsOn` name components by `bom-ref` and become edges
/// between their paths; refs that name no component with paths are ignored.
fn parse_cyclonedx(any: AnyJson) -> Result<Upload, UploadError> {
    let mut items = Items::new();
    let mut by_ref: HashMap<String, Vec<u32>> = HashMap::new();
    let mut skipped = 0usize;

    let mut queue: Vec<(String, Value)> = Vec::new();
    match any.metadata {
        None | Some(Value::Null) => {}
        Some(Value::Object(mut m)) => match m.remove("component") {
            None | Some(Value::Null) => {}
            Some(c) => queue.push(("metadata.component".into(), c)),
        },
        Some(_) => return Err(UploadError::MalformedSbom("metadata must be an object".into())),
    }
    let push_list = |queue: &mut Vec<(String, Value)>, at: &str, list: Option<Value>| -> Result<(), UploadError> {
        match list {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Array(cs)) => {
                // Reversed, so that popping visits them in order.
                for (i, c) in cs.into_iter().enumerate().rev() {
                    queue.push((format!("{at}[{i}]"), c));
                }
                Ok(())
            }
            Some(_) => Err(UploadError::MalformedSbom(format!("{at} must be an array"))),
        }
    };
    let mut top = Vec::new();
    push_list(&mut top, "components", any.components)?;
    // The root first, then the components in order.
    top.append(&mut queue);
    queue = top;

    while let Some((at, c)) = queue.pop() {
        let Value::Object(mut c) = c else {
            return Err(UploadError::MalformedSbom(format!("{at} must be an object")));
        };
        let nix = nix_properties(&c, &at)?;
        let bom_ref = match c.get("bom-ref") {
            Some(Value::String(r)) => Some(r.clone()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(UploadError::MalformedSbom(format!("{at}.bom-ref must be a string"))),
        };
        let drv = nix.drv_path.as_deref().map(|d| drv_path(d, || format!("{at} nix:drv_path"))).transpose()?;
        let name = nix.output.as_deref().map(|n| output_name(n, || format!("{at} nix:output"))).transpose()?;
        let mut outs = nix.out_paths;
        if outs.is_empty() {
            // An output path as bom-ref: that path. Anything else (a .drv as sbomnix's
            // bom-ref, a purl) names no output.
            // bombon writes the output path's basename as bom-ref; older lila the full path.
            let named =
                bom_ref.as_deref().and_then(|r| StorePath::parse(r).or_else(|_| StorePath::from_basename(r)).ok());
            match named {
                Some(p) if !p.is_derivation() => outs.push(p.to_string()),
                _ => skipped += 1,
            }
        }
        let several = outs.len() > 1;
        let mut idx = Vec::with_capacity(outs.len());
        for o in &outs {
            let path = output_path(o, || format!("{at} nix:out_path"))?;
            // `nix:output` names the output of a one-output component only.
            let output_name = if several { None } else { name.clone() };
            idx.push(items.add(EvaluationItem { path, drv_path: drv.clone(), output_name })?);
        }
        if let Some(r) = bom_ref {
            if !idx.is_empty() {
                by_ref.entry(r).or_default().extend(idx);
            }
        }
        push_list(&mut queue, &format!("{at}.components"), c.remove("components"))?;
    }

    let mut edges = HashSet::new();
    match any.dependencies {
        None | Some(Value::Null) => {}
        Some(Value::Array(deps)) => {
            for (i, d) in deps.iter().enumerate() {
                let Value::Object(d) = d else {
                    return Err(UploadError::MalformedSbom(format!("dependencies[{i}] must be an object")));
                };
                let Some(Value::String(r)) = d.get("ref") else {
                    return Err(UploadError::MalformedSbom(format!("dependencies[{i}] has no string \"ref\"")));
                };
                let on: Vec<&str> = match d.get("dependsOn") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(on)) => {
                        on.iter().map(|x| x.as_str()).collect::<Option<_>>().ok_or_else(|| {
                            UploadError::MalformedSbom(format!("dependencies[{i}].dependsOn must hold strings"))
                        })?
                    }
                    Some(_) => {
                        return Err(UploadError::MalformedSbom(format!("dependencies[{i}].dependsOn must be an array")))
                    }
                };
                let Some(from) = by_ref.get(r.as_str()) else { continue };
                for to in on.iter().filter_map(|t| by_ref.get(*t)) {
                    for &f in from {
                        for &t in to {
                            if f != t && edges.insert(Edge { from: f, to: t }) && edges.len() > MAX_EVALUATION_EDGES {
                                return Err(UploadError::TooManyEdges { max: MAX_EVALUATION_EDGES });
                            }
                        }
                    }
                }
            }
        }
        Some(_) => return Err(UploadError::MalformedSbom("dependencies must be an array".into())),
    }
    let mut edges: Vec<Edge> = edges.into_iter().collect();
    edges.sort_unstable();
    items.finish(Format::CycloneDx, edges, skipped)
}

#[cfg(test)]
mod tests;
