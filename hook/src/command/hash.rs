//! `nhc hash`: the NAR hash and size of any file, symlink or directory.

use std::path::PathBuf;

use nhc_core::NarHash;

use super::{CommandError, Exit};
use crate::config;

/// Print the NAR hash and NAR size of a file or directory: `sha256:<nix32> <size>`.
///
/// The hash is the one `nix hash path --base32` prints (prefixed with `sha256:`) and,
/// for a store path, the one `nix-store -q --hash` prints. Streams in constant memory.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    path: PathBuf,
    /// Print the hash in SRI form (`sha256-<base64>`).
    #[arg(long)]
    sri: bool,
    /// Hash on one thread only (for comparison).
    #[arg(long, hide = true)]
    sequential: bool,
}

pub fn run(args: Args) -> Exit {
    let Args { path, sri, sequential } = args;
    let d = if sequential { nhc_nar::hash_path_sequential(&path) } else { nhc_nar::hash_path(&path) }
        .map_err(CommandError::Hash)?;
    let h = NarHash::from_bytes(d.sha256);
    println!("{} {}", if sri { h.to_sri() } else { h.to_string() }, d.size);
    Ok(0)
}
