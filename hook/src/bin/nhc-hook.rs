//! Nix's post-build-hook and diff-hook. Always exits 0: see `nhc-hook --help`.

fn main() {
    nhc_hook::hook_main();
}
