//! Nix's post-build-hook and diff-hook. Always exits 0: see `nhc-hook --help`.

use nhc_hook::{config, hook, log};

fn main() {
    log::set_program("nhc-hook");
    // A panic (a bug, or stdout closed under `--help`) must not fail the build.
    hook::guarded(|| {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match args.as_slice() {
            [] => hook::post_build(std::env::var("DRV_PATH").ok(), std::env::var("OUT_PATHS").ok()),
            [a] if a == "--help" || a == "-h" => println!("{}\n{}", hook::HELP, config::HELP),
            [a] if a == "--version" || a == "-V" => println!("nhc-hook {}", env!("CARGO_PKG_VERSION")),
            [original, check, drv] | [original, check, drv, _] => hook::diff_hook(original, check, drv),
            _ => log::error("unexpected arguments: see nhc-hook --help (nothing attested)"),
        }
    });
    std::process::exit(0);
}
