//! Messages on stderr, prefixed with the program's name (Nix shows the hook's stderr
//! on the client's terminal).

use std::io::Write;
use std::sync::OnceLock;

static PROGRAM: OnceLock<&'static str> = OnceLock::new();

pub fn set_program(name: &'static str) {
    let _ = PROGRAM.set(name);
}

fn emit(level: &str, msg: &str) {
    let prog = PROGRAM.get().copied().unwrap_or("nhc");
    // stderr may be closed; nothing useful to do then.
    let _ = writeln!(std::io::stderr().lock(), "{prog}: {level}{msg}");
}

pub fn info(msg: &str) {
    emit("", msg);
}

pub fn warn(msg: &str) {
    emit("warning: ", msg);
}

pub fn error(msg: &str) {
    emit("error: ", msg);
}
