//! The nix-hash-collection client CLI: see `nhc --help`.

fn main() {
    std::process::exit(nhc_hook::nhc_main());
}
