//! `nhc pubkey`: the public key of a secret key.

use std::io::Read;

use nhc_core::SecretKey;

use super::Exit;
use crate::config::{self, Config};

/// Print the public key of a secret key read from stdin (or the configured key with --configured).
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    /// Use HASH_COLLECTION_SECRET_KEY(_FILE) instead of stdin.
    #[arg(long)]
    configured: bool,
}

pub fn run(args: Args) -> Exit {
    let key = if args.configured {
        Config::load()?.secret_key()?
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        SecretKey::parse(&s)?
    };
    print!("{}", key.public_key());
    Ok(0)
}
