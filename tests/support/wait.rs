//! Bounded polling of a condition that has no event to wait on (an HTTP
//! resource reaching a state, a socket becoming bound). Every poll loop has
//! a deadline and says what it waited for when it runs out.

use std::future::Future;
use std::time::Duration;

use tokio::time::{sleep, Instant};

use crate::error::{E2eError, Result};

/// Interval between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `check` until it returns `Ok(Some(v))` or `within` has passed.
/// `Ok(None)` means "not yet"; an `Err` stops at once.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(E2eError::timeout(what, within));
        }
        sleep(POLL_INTERVAL).await;
    }
}

/// Runs a whole test body with an overall bound, so that no test can hang
/// the suite whatever it waits on.
pub async fn bounded<T>(limit: Duration, body: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| Err(E2eError::timeout("the whole test to finish", limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_ready() {
        let mut n = 0;
        let got = wait_for("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let v = n;
            async move { Ok((v >= 3).then_some(v)) }
        })
        .await;
        assert_eq!(got.ok(), Some(3));
    }

    #[tokio::test]
    async fn bounded_stops_a_body_that_hangs() {
        let hung = bounded(
            Duration::from_millis(50),
            std::future::pending::<Result<()>>(),
        )
        .await;
        assert!(matches!(hung, Err(E2eError::Timeout { .. })), "{hung:?}");
        let done = bounded(Duration::from_secs(5), async { Ok(7) }).await;
        assert_eq!(done.ok(), Some(7));
    }

    #[tokio::test]
    async fn times_out_with_what_it_waited_for() {
        let got: Result<()> =
            wait_for("never", Duration::from_millis(120), || async { Ok(None) }).await;
        match got {
            Err(E2eError::Timeout { what, .. }) => assert_eq!(what, "never"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}
