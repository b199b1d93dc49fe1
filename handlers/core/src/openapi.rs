//! OpenAPI schemas (`utoipa`) of the values that cross the API as strings, for the
//! server's `GET /openapi.json`. Behind the `openapi` feature: the client does not
//! need them, so it does not compile utoipa.
//!
//! The API's structs derive `ToSchema` in [`crate::api`]; the types here serialize
//! through `Display`/`FromStr`, so their schemas are written by hand, with the same
//! rules their parsers enforce (docs/formats.md).

use std::borrow::Cow;

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Ref, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::diff::DiffFormat;
use crate::fingerprint::References;
use crate::jobset::{JobsetName, Rev};
use crate::{BuilderName, DrvPath, NarHash, OutputName, PublicKey, Signature, StorePath};

/// Nix's base-32 digits (0-9 a-z without e o t u).
const NIX32: &str = "[0-9a-df-np-sv-z]";
/// Characters of a store-path name.
const NAME: &str = r"[A-Za-z0-9+\-._?=]";
/// A key name (1 to 128 characters of A-Z a-z 0-9 . _ + @ -) and its colon.
const KEY_NAME: &str = "^[A-Za-z0-9._+@-]{1,128}:";

fn string(description: &str, pattern: Option<String>, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
        .examples([example])
        .into()
}

/// One string type: its schema name, and its schema.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

string_schema!(
    StorePath,
    "StorePath",
    string(
        "A full store path `/nix/store/<32 nix32 characters>-<name>`; the name is 1 to 211 characters of \
         A-Z a-z 0-9 + - . _ ? = and does not start with '.'.",
        Some(format!("^/nix/store/{NIX32}{{32}}-[A-Za-z0-9+\\-_?=]{NAME}{{0,210}}$")),
        "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello",
    )
);
string_schema!(
    DrvPath,
    "DrvPath",
    string(
        "The store path of a derivation: a store path whose name ends in `.drv`.",
        Some(format!("^/nix/store/{NIX32}{{32}}-{NAME}*\\.drv$")),
        "/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv",
    )
);
string_schema!(
    NarHash,
    "NarHash",
    string(
        "The SHA-256 of a NAR. Answers always use `sha256:<52 nix32 characters>`; requests may also use \
         `sha256:<64 hex digits>` or `sha256-<base64>`.",
        Some("^sha256[:-]".to_owned()),
        "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
    )
);
string_schema!(
    BuilderName,
    "BuilderName",
    string(
        "A builder's name: 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit.",
        Some("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$".to_owned()),
        "builder-1",
    )
);
string_schema!(
    OutputName,
    "OutputName",
    string(
        "A derivation output name: 1 to 64 characters of A-Z a-z 0-9 + - . _ ? =, not starting with '.'.",
        Some("^[A-Za-z0-9+\\-_?=][A-Za-z0-9+\\-._?=]{0,63}$".to_owned()),
        "out",
    )
);
string_schema!(
    PublicKey,
    "PublicKey",
    string(
        "An ed25519 public key as Nix writes it: `<key name>:<base64 of 32 bytes>`; the key name is 1 to 128 \
         characters of A-Z a-z 0-9 . _ + @ -.",
        Some(format!("{KEY_NAME}[A-Za-z0-9+/]{{43}}=$")),
        "test-1:p1hqZLOxS4y/qQjWxzuGJ6Y3ILHA5bsSvRhDdQWoqsg=",
    )
);
string_schema!(
    Signature,
    "Signature",
    string(
        "An ed25519 signature as Nix writes it: `<key name>:<base64 of 64 bytes>`, over the output's \
         fingerprint `1;<output_path>;<nar_hash as sha256:nix32>;<nar_size>;<sorted references, comma-joined>`.",
        Some(format!("{KEY_NAME}[A-Za-z0-9+/]{{86}}==$")),
        "test-1:VSRJzcUE5pusOEtnKzLOeuiJl1f5e/aPQ5x4XO0DoY66FPNthyUYeYJebETf+mJb936dH0DXO3Qj1G5F+yylCw==",
    )
);

impl PartialSchema for References {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(Ref::from_schema_name(<StorePath as ToSchema>::name()))
            .unique_items(true)
            .description(Some("Full store paths, none twice; answers list them sorted."))
            .into()
    }
}

impl ToSchema for References {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("References")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((<StorePath as ToSchema>::name().into_owned(), <StorePath as PartialSchema>::schema()));
    }
}

string_schema!(
    JobsetName,
    "JobsetName",
    string(
        "A jobset's name: 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit.",
        Some("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$".to_owned()),
        "nixos-iso-minimal-x86_64",
    )
);
string_schema!(
    Rev,
    "Rev",
    string(
        "An evaluation's revision (e.g. a nixpkgs commit): 1 to 128 characters of A-Z a-z 0-9 . _ -.",
        Some("^[A-Za-z0-9._-]{1,128}$".to_owned()),
        "5e0ca22929f3342b19569b21b2f3462f053e497b",
    )
);

string_schema!(
    DiffFormat,
    "DiffFormat",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "What a diff report is: `diffoscope-text` (diffoscope's text report) or `file-list` \
             (one line per differing file with both hashes)."
        ))
        .enum_values(Some(["diffoscope-text", "file-list"]))
        .examples(["diffoscope-text"])
        .into()
);
