//! Waiting for conditions: every wait has a deadline and polls with a short backoff, never a
//! fixed sleep.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// How long any awaited condition may take before the test fails; generous for a loaded
/// 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Retries `check` until it gives `Some`, for at most [`DEADLINE`]. Returns `None` on timeout.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            eprintln!("timed out waiting for {what}");
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Like [`wait_until`] but fails the test on timeout.
pub async fn expect<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match wait_until(what, check).await {
        Some(value) => value,
        None => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// The blocking form, for drops and synchronous tests: polls `check` every 10 ms for at most
/// `timeout`; true when it held.
pub fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
