//! Running Nix's commands with a deadline: a stuck `nix-store` must not stall a build.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nhc_core::StorePath;

use crate::Error;

/// How long a `nix-store --query` may take before it is killed (it takes tens of
/// milliseconds; a stuck one must not stall the build).
pub const NIX_STORE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("killed after {:.1} s without an answer", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("{0}")]
    Wait(std::io::Error),
    #[error("its output did not end after it exited")]
    OutputNotClosed,
}

/// What a finished command left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `cmd` with stdin closed, killing it after `timeout`. The output is read by
/// two threads so a full pipe cannot block the child.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Finished, CommandError> {
    let start = Instant::now();
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|source| {
            CommandError::Spawn { program: cmd.get_program().to_string_lossy().into_owned(), source }
        })?;
    let (tx, rx) = mpsc::channel();
    let pipes: [(u8, Option<Box<dyn Read + Send>>); 2] = [
        (1, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        (2, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
    ];
    for (fd, pipe) in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send((fd, buf));
        });
    }
    drop(tx);
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(25));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TimedOut(timeout));
            }
            Err(e) => return Err(CommandError::Wait(e)),
        }
    };
    // A process it started may still hold the pipes: do not wait past the deadline.
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(100));
        match rx.recv_timeout(left) {
            Ok((1, b)) => stdout = b,
            Ok((_, b)) => stderr = b,
            Err(_) => return Err(CommandError::OutputNotClosed),
        }
    }
    Ok(Finished { status, stdout, stderr })
}

/// Runs `nix-store --query ARGS` (killed after [`NIX_STORE_TIMEOUT`]) and returns
/// its stdout lines.
pub fn nix_store_query(args: &[&str]) -> Result<Vec<String>, Error> {
    let mut cmd = Command::new("nix-store");
    cmd.arg("--query").args(args);
    let shown = || args.join(" ");
    let done = run_with_timeout(cmd, NIX_STORE_TIMEOUT).map_err(|source| Error::NixStore { args: shown(), source })?;
    if !done.status.success() {
        let stderr = String::from_utf8_lossy(&done.stderr).trim().to_owned();
        return Err(Error::NixStoreFailed { args: shown(), stderr });
    }
    Ok(String::from_utf8_lossy(&done.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect())
}

/// `nix-store --query ARGS` whose output is store paths.
pub fn nix_store_query_paths(args: &[&str]) -> Result<Vec<StorePath>, Error> {
    Ok(nix_store_query(args)?.iter().map(|l| StorePath::parse(l)).collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_bounded_in_time() {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let done = run_with_timeout(c, Duration::from_secs(5)).unwrap();
        assert_eq!((done.status.code(), &done.stdout[..], &done.stderr[..]), (Some(3), &b"out\n"[..], &b"err\n"[..]));
        // Much output: read while the child runs, so it does not block on a full pipe.
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "head -c 1000000 /dev/zero"]);
        assert_eq!(run_with_timeout(c, Duration::from_secs(5)).unwrap().stdout.len(), 1_000_000);
        let t0 = Instant::now();
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "exec sleep 30"]);
        let e = run_with_timeout(c, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, CommandError::TimedOut(_)), "{e}");
        assert!(e.to_string().contains("killed"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert!(matches!(
            run_with_timeout(Command::new("/nonexistent/x"), Duration::from_secs(1)),
            Err(CommandError::Spawn { .. })
        ));
    }
}
