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

/// Parses an upload whose `Content-Type` header is `content_type`, of at most
/// [`MAX_UPLOAD_BYTES`].
pub fn parse_upload(content_type: Option<&str>, body: &[u8]) -> Result<Upload, UploadError> {
    parse_upload_within(content_type, body, MAX_UPLOAD_BYTES)
}

/// As [`parse_upload`] with another body limit: the client reads SBOMs larger than the
/// route takes, to send their paths in the compact form.
pub fn parse_upload_within(content_type: Option<&str>, body: &[u8], max_bytes: usize) -> Result<Upload, UploadError> {
    if body.len() > max_bytes {
        return Err(UploadError::BodyTooLarge { max: max_bytes });
    }
    let declared = declared(content_type)?;
    let text = std::str::from_utf8(body).map_err(|_| UploadError::NotUtf8)?;
    // A byte-order mark (editors on Windows write one) is not part of the first line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let json = match declared {
        Declared::Json => true,
        Declared::Text | Declared::Unknown => starts_with_brace(text),
    };
    if json {
        parse_json(text)
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

/// The name of the output of `drv` whose path is `out` ([`DrvPath::output_name_of`]).
pub fn output_name_from_path(drv: &DrvPath, out: &StorePath) -> Option<OutputName> {
    drv.output_name_of(out)
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

/// Any JSON upload: the fields of every format (unknown fields, and SBOMs carry many,
/// are skipped without being kept). Typed, so that a large SBOM costs its paths and
/// little more in memory (a Worker has 128 MB), not a tree of `serde_json::Value`s.
#[derive(Deserialize)]
struct AnyJson {
    #[serde(rename = "bomFormat", default)]
    bom_format: Option<String>,
    #[serde(default)]
    paths: Option<Vec<PathEntry>>,
    /// lila's `{"git_revision", "definition": <SBOM>}`.
    #[serde(default)]
    definition: Option<Box<AnyJson>>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    components: Option<Vec<Component>>,
    #[serde(default)]
    dependencies: Option<Vec<Dependency>>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    component: Option<Component>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(rename = "bom-ref", default)]
    bom_ref: Option<String>,
    #[serde(default)]
    properties: Option<Vec<Property>>,
    #[serde(default)]
    components: Option<Vec<Component>>,
}

#[derive(Deserialize)]
struct Property {
    name: String,
    #[serde(default)]
    value: Text,
}

#[derive(Deserialize)]
struct Dependency {
    #[serde(rename = "ref")]
    r#ref: String,
    #[serde(rename = "dependsOn", default)]
    depends_on: Option<Vec<String>>,
}

/// A property's value: kept when it is a string, skipped otherwise (sbomnix writes
/// lists in some properties that are not read here).
#[derive(Default)]
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Some(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(Some(v)))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Text, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Text, A::Error> {
                while a.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// An entry of `{"paths": [...]}`: a string, or `{"path", "drv_path", "output_name"}`.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a store path, or an object with \"path\" (and optional \"drv_path\", \"output_name\")")]
enum PathEntry {
    Path(String),
    Item(PathObject),
}

#[derive(Deserialize)]
struct PathObject {
    path: String,
    #[serde(default)]
    drv_path: Option<String>,
    #[serde(default)]
    output_name: Option<String>,
}

fn parse_json(text: &str) -> Result<Upload, UploadError> {
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => UploadError::UnknownFormat("a JSON upload must be an object".into()),
            Err(e) => UploadError::MalformedJson(e.to_string()),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let any: AnyJson = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Where it failed tells the format: an SBOM's parts, or anything else.
        let path = e.path().to_string();
        let in_sbom = [
            "components",
            "metadata",
            "dependencies",
            "definition.components",
            "definition.metadata",
            "definition.dependencies",
        ]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}[")) || path.starts_with(&format!("{p}.")));
        if in_sbom {
            UploadError::MalformedSbom(e.to_string())
        } else {
            UploadError::MalformedJson(e.to_string())
        }
    })?;
    de.end().map_err(|e| UploadError::MalformedJson(e.to_string()))?;
    let any = match any {
        AnyJson { bom_format: None, paths: None, definition: Some(def), .. } => *def,
        a => a,
    };
    match (any.bom_format.as_deref(), any.paths) {
        (Some("CycloneDX"), _) => parse_cyclonedx(any.metadata, any.components, any.dependencies),
        (Some(f), _) => Err(UploadError::UnknownFormat(format!("bomFormat {f:?}: only CycloneDX SBOMs are read"))),
        (None, Some(paths)) => parse_paths_json(paths),
        (None, None) => Err(UploadError::UnknownFormat(
            "JSON without \"paths\" or \"bomFormat\": expected {\"paths\": [...]} or a CycloneDX SBOM".into(),
        )),
    }
}

/// `{"paths": [...]}`: each a store path, or `{"path", "drv_path", "output_name"}`.
fn parse_paths_json(list: Vec<PathEntry>) -> Result<Upload, UploadError> {
    let mut items = Items::new();
    for (i, entry) in list.into_iter().enumerate() {
        let at = || format!("paths[{i}]");
        let item = match entry {
            PathEntry::Path(s) => EvaluationItem::bare(output_path(&s, at)?),
            PathEntry::Item(o) => EvaluationItem {
                path: output_path(&o.path, at)?,
                drv_path: o.drv_path.map(|d| drv_path(&d, || format!("paths[{i}].drv_path"))).transpose()?,
                output_name: o
                    .output_name
                    .map(|n| output_name(&n, || format!("paths[{i}].output_name")))
                    .transpose()?,
            },
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

/// The `nix:*` properties of a component.
fn nix_properties(props: Vec<Property>, at: &str) -> Result<Nix, UploadError> {
    let mut nix = Nix::default();
    for (j, p) in props.into_iter().enumerate() {
        let slot = match p.name.as_str() {
            // sbomnix writes one nix:output_path per output; nix-build-sbom (lila) nix:out_path.
            "nix:out_path" | "nix:output_path" => None,
            "nix:drv_path" => Some(&mut nix.drv_path),
            "nix:output" => Some(&mut nix.output),
            _ => continue,
        };
        let Some(value) = p.value.0 else {
            return Err(UploadError::MalformedSbom(format!(
                "{at}.properties[{j}] ({}) has no string \"value\"",
                p.name
            )));
        };
        match slot {
            None => nix.out_paths.push(value),
            Some(s) => *s = Some(value),
        }
    }
    Ok(nix)
}

/// A CycloneDX JSON SBOM as the Nix SBOM tools write it: every component (and
/// `metadata.component`, the root; nested `components` too) with `nix:out_path` or
/// `nix:output_path` properties is one item per output path, with `nix:drv_path` and
/// `nix:output` when given. A component without them is skipped, unless its `bom-ref`
/// is itself an output path or its basename (older lila reports and bombon name
/// components so). `dependencies[].ref`/`dependsOn` name components by `bom-ref` and
/// become edges between their paths; refs that name no component with paths are
/// ignored.
fn parse_cyclonedx(
    metadata: Option<Metadata>,
    components: Option<Vec<Component>>,
    dependencies: Option<Vec<Dependency>>,
) -> Result<Upload, UploadError> {
    let mut items = Items::new();
    let mut by_ref: HashMap<String, Vec<u32>> = HashMap::new();
    let mut skipped = 0usize;

    // A stack, popped in order: the root first, then the components depth first.
    let mut stack: Vec<(String, Component)> = Vec::new();
    let push_all = |stack: &mut Vec<(String, Component)>, at: &str, list: Option<Vec<Component>>| {
        for (i, c) in list.unwrap_or_default().into_iter().enumerate().rev() {
            stack.push((format!("{at}[{i}]"), c));
        }
    };
    push_all(&mut stack, "components", components);
    if let Some(root) = metadata.and_then(|m| m.component) {
        stack.push(("metadata.component".into(), root));
    }

    while let Some((at, c)) = stack.pop() {
        let nix = nix_properties(c.properties.unwrap_or_default(), &at)?;
        let drv = nix.drv_path.as_deref().map(|d| drv_path(d, || format!("{at} nix:drv_path"))).transpose()?;
        let name = nix.output.as_deref().map(|n| output_name(n, || format!("{at} nix:output"))).transpose()?;
        let mut outs = nix.out_paths;
        if outs.is_empty() {
            // bombon writes the output path's basename as bom-ref; older lila the full
            // path. Anything else (a .drv as sbomnix's bom-ref, a purl) names no output.
            let named =
                c.bom_ref.as_deref().and_then(|r| StorePath::parse(r).or_else(|_| StorePath::from_basename(r)).ok());
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
        if let Some(r) = c.bom_ref {
            if !idx.is_empty() {
                by_ref.entry(r).or_default().extend(idx);
            }
        }
        push_all(&mut stack, &format!("{at}.components"), c.components);
    }

    let mut edges = HashSet::new();
    for d in dependencies.unwrap_or_default() {
        let Some(from) = by_ref.get(&d.r#ref) else { continue };
        for to in d.depends_on.unwrap_or_default().iter().filter_map(|t| by_ref.get(t)) {
            for &f in from {
                for &t in to {
                    if f != t && edges.insert(Edge { from: f, to: t }) && edges.len() > MAX_EVALUATION_EDGES {
                        return Err(UploadError::TooManyEdges { max: MAX_EVALUATION_EDGES });
                    }
                }
            }
        }
    }
    let mut edges: Vec<Edge> = edges.into_iter().collect();
    edges.sort_unstable();
    items.finish(Format::CycloneDx, edges, skipped)
}

#[cfg(test)]
mod tests;
