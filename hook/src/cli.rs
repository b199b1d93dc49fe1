//! `nhc`: the command line's definition and dispatch; each command lives in its own
//! file under `command/`.

use clap::{Parser, Subcommand};

use crate::command::{
    self, audit, check, flush, hash, import, jobset, keygen, log_verify, proxy, pubkey, rebuild, status, submit,
    with_config,
};
use crate::config;
use crate::log;

#[derive(Parser, Debug)]
#[command(
    name = "nhc",
    version,
    about = "The nix-hash-collection client: keys, NAR hashes, attestations and reproducibility status",
    after_help = config::help()
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    Keygen(keygen::Args),
    Pubkey(pubkey::Args),
    Hash(hash::Args),
    Submit(submit::Args),
    Flush(flush::Args),
    Status(status::Args),
    Jobset(jobset::Args),
    Import(import::Args),
    Proxy(proxy::Args),
    Check(check::Args),
    Rebuild(rebuild::Args),
    Audit(audit::Args),
    Log(log_verify::Args),
}

/// The `nhc` binary; returns its exit status.
pub fn main() -> i32 {
    log::set_program("nhc");
    let r = match Cli::parse().cmd {
        Cmd::Keygen(a) => keygen::run(a),
        Cmd::Pubkey(a) => pubkey::run(a),
        Cmd::Hash(a) => hash::run(a),
        Cmd::Submit(a) => with_config(|cfg| submit::run(cfg, a)),
        Cmd::Flush(a) => with_config(|cfg| flush::run(cfg, a)),
        Cmd::Status(a) => with_config(|cfg| status::run(cfg, a)),
        Cmd::Jobset(a) => with_config(|cfg| jobset::run(cfg, a)),
        Cmd::Import(a) => with_config(|cfg| import::run(cfg, a)),
        Cmd::Proxy(a) => with_config(|cfg| proxy::run(cfg, a)),
        Cmd::Check(a) => with_config(|cfg| check::run(cfg, a)),
        Cmd::Rebuild(a) => with_config(|cfg| rebuild::run(cfg, a)),
        // Their exit status 1 means a problem with the log: any other failure is 2.
        Cmd::Audit(a) => with_config(|cfg| audit::run(cfg, a)).or_else(usage_or_network),
        Cmd::Log(a) => with_config(|cfg| log_verify::run(cfg, a)).or_else(usage_or_network),
    };
    r.unwrap_or_else(|e: command::CommandError| {
        log::error(&e.to_string());
        1
    })
}

/// Reports a failure of `nhc audit` or `nhc log verify` that is not the log's: 2.
fn usage_or_network(e: command::CommandError) -> command::Exit {
    log::error(&e.to_string());
    Ok(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command's `--help` ends with the configuration.
    #[test]
    fn every_help_lists_the_configuration() {
        let root = Cli::command();
        for sub in root.get_subcommands().chain([&root]) {
            let help = sub.clone().render_long_help().to_string();
            assert!(help.contains(config::SERVER.env), "{}:\n{help}", sub.get_name());
            assert!(sub.get_about().is_some(), "{} has no description", sub.get_name());
        }
        Cli::command().debug_assert();
    }
}
