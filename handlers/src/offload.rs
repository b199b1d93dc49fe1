//! CPU-bound work off the async threads. Checking the signatures of a submission with
//! thousands of outputs takes tens of milliseconds: on a native runtime (nhc-server,
//! the Lambda) that would stall every other request of the same worker thread, so
//! large jobs go to tokio's blocking pool. A Worker (wasm32) has one thread and no
//! pool: there everything runs inline. This is the one place that decides.

use crate::error::ApiError;

/// Jobs of at least this many units (outputs of a submission) leave the async threads
/// on native platforms. Below it, a job takes about a millisecond or less, less than
/// handing it to another thread is worth.
pub const OFFLOAD_MIN_UNITS: usize = 32;

/// Runs `job`, of `units` units of work: on the blocking pool when there are at least
/// [`OFFLOAD_MIN_UNITS`] and a tokio runtime runs this task, inline otherwise.
pub(crate) async fn cpu_bound<T, F>(units: usize, job: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    #[cfg(not(target_arch = "wasm32"))]
    if units >= OFFLOAD_MIN_UNITS {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            return runtime.spawn_blocking(job).await.map_err(|e| {
                ApiError::Internal(if e.is_panic() { "a blocking job panicked".into() } else { e.to_string() })
            });
        }
    }
    #[cfg(target_arch = "wasm32")]
    let _ = units;
    Ok(job())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    /// A large job that can only finish when another task of the same single-threaded
    /// runtime runs while it waits: inline, it would wait in vain (and time out).
    #[test]
    fn large_jobs_leave_the_runtime_thread_free() {
        let rt = current_thread();
        let got = rt.block_on(async {
            let (tx, rx) = mpsc::channel::<()>();
            let job = cpu_bound(OFFLOAD_MIN_UNITS, move || rx.recv_timeout(Duration::from_secs(30)).is_ok());
            let other = async move {
                tokio::task::yield_now().await;
                tx.send(()).ok();
            };
            let (got, ()) = tokio::join!(job, other);
            got
        });
        assert!(got.unwrap(), "the runtime thread was blocked while the job ran");
    }

    #[test]
    fn small_jobs_run_inline_and_large_ones_elsewhere() {
        let rt = current_thread();
        let here = std::thread::current().id();
        let small = rt.block_on(cpu_bound(OFFLOAD_MIN_UNITS - 1, || std::thread::current().id())).unwrap();
        assert_eq!(small, here);
        let large = rt.block_on(cpu_bound(OFFLOAD_MIN_UNITS, || std::thread::current().id())).unwrap();
        assert_ne!(large, here);
        // Outside a runtime there is no pool: inline.
        let outside = futures_executor_block_on(cpu_bound(10_000, || std::thread::current().id())).unwrap();
        assert_eq!(outside, here);
    }

    #[test]
    fn a_panicking_job_is_an_internal_error() {
        let rt = current_thread();
        let r = rt.block_on(cpu_bound(OFFLOAD_MIN_UNITS, || -> u8 { panic!("boom") }));
        assert!(matches!(r, Err(ApiError::Internal(_))));
    }

    /// Polls a future to completion on this thread without any tokio runtime.
    fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
