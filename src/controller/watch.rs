//! Driving a watch stream: how long to wait after a watch error before trying again.
//!
//! The contract promises a change is served within a second of its watch event, and that
//! holds only if the watch is back soon after the API server is. kube-runtime's default
//! backoff (client-go's: 0.8 s doubling to 30 s) left a 10 s outage with waits of 6-13 s,
//! so retries here double from 100 ms and stop at 1 s, with jitter so replicas and
//! watches do not retry in step. A `410 Gone` (`too old resource version`, reason
//! `Expired`) is answered at once: the watcher re-lists, and waiting cannot make the old
//! version valid again. No API calls here beyond polling the stream it is given.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use kube::runtime::watcher;

/// The first wait after an error.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between two tries.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// Wait before the next try after a watch error: doubling from [`FIRST_DELAY`] to
/// [`MAX_DELAY`], each drawn in [half, whole] of the step; zero after `410 Gone`.
#[derive(Debug)]
pub struct RetryDelay {
    step: Duration,
}

impl Default for RetryDelay {
    fn default() -> Self {
        RetryDelay { step: FIRST_DELAY }
    }
}

impl RetryDelay {
    /// How long to wait after `error` before polling the watch again.
    pub fn after(&mut self, error: &watcher::Error) -> Duration {
        if is_expired(error) {
            return Duration::ZERO;
        }
        let step = self.step;
        self.step = (step * 2).min(MAX_DELAY);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Back to the first delay (the watch delivered an event).
    pub fn reset(&mut self) {
        self.step = FIRST_DELAY;
    }
}

/// `410 Gone`: the resource version the watch resumes from is older than the server keeps.
fn is_expired(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// Polls `stream` until it ends, calling `event` on every event and pausing after each
/// error as [`RetryDelay`] says. `kind` names the watched resource in logs.
pub async fn drive<S, T>(stream: S, kind: &str, mut event: impl FnMut(&T))
where
    S: Stream<Item = Result<T, watcher::Error>>,
{
    let mut retry = RetryDelay::default();
    tokio::pin!(stream);
    while let Some(next) = stream.next().await {
        match next {
            Ok(e) => {
                retry.reset();
                event(&e);
            }
            Err(error) => {
                let delay = retry.after(&error);
                if delay.is_zero() {
                    tracing::info!(kind, error = %error, "watch expired; re-listing");
                } else {
                    tracing::warn!(kind, error = %error, retry_in = ?delay, "watch error (retrying)");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube::core::Status;
    use parking_lot::Mutex;
    use tokio::time::Instant;

    use super::*;

    fn gone() -> watcher::Error {
        watcher::Error::WatchError(Box::new(Status {
            code: 410,
            reason: "Expired".into(),
            message: "too old resource version: 1 (2)".into(),
            ..Status::default()
        }))
    }

    fn refused() -> watcher::Error {
        watcher::Error::WatchStartFailed(kube::Error::Service("client error (Connect)".into()))
    }

    #[test]
    fn delays_double_from_100ms_and_never_exceed_one_second() {
        let mut retry = RetryDelay::default();
        let delays: Vec<Duration> = (0..40).map(|_| retry.after(&refused())).collect();
        assert!(delays[0] >= FIRST_DELAY / 2 && delays[0] <= FIRST_DELAY);
        assert!(delays.iter().all(|d| *d <= MAX_DELAY), "{delays:?}");
        assert!(
            delays[10..].iter().all(|d| *d >= MAX_DELAY / 2),
            "{delays:?}"
        );
    }

    #[test]
    fn jitter_spreads_the_capped_delay() {
        let mut retry = RetryDelay::default();
        let capped: std::collections::BTreeSet<Duration> =
            (0..40).map(|_| retry.after(&refused())).skip(10).collect();
        assert!(capped.len() > 1, "{capped:?}");
    }

    #[test]
    fn expired_resource_version_is_retried_at_once_and_keeps_the_step() {
        let mut retry = RetryDelay::default();
        retry.after(&refused());
        assert_eq!(retry.after(&gone()), Duration::ZERO);
        let api_gone = watcher::Error::InitialListFailed(kube::Error::Api(Box::new(Status {
            code: 410,
            ..Status::default()
        })));
        assert_eq!(retry.after(&api_gone), Duration::ZERO);
        let next = retry.after(&refused());
        assert!(next >= FIRST_DELAY && next <= FIRST_DELAY * 2, "{next:?}");
    }

    #[test]
    fn an_event_resets_the_delay() {
        let mut retry = RetryDelay::default();
        for _ in 0..10 {
            retry.after(&refused());
        }
        retry.reset();
        assert!(retry.after(&refused()) <= FIRST_DELAY);
    }

    /// A watch that fails `errors` times (an outage), then expires once, then delivers an
    /// event; it records the (paused) time of every poll.
    fn outage(
        errors: usize,
        polls: Arc<Mutex<Vec<Instant>>>,
    ) -> impl Stream<Item = Result<(), watcher::Error>> {
        let items = (0..errors)
            .map(|_| Err(refused()))
            .chain([Err(gone()), Ok(())]);
        futures_util::stream::iter(items).map(move |item| {
            polls.lock().push(Instant::now());
            item
        })
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_long_outage_the_watch_is_retried_within_a_second_and_relisted_at_once() {
        let polls = Arc::new(Mutex::new(Vec::new()));
        let mut events = 0;
        let start = Instant::now();
        drive(outage(30, polls.clone()), "EndpointSlice", |_| events += 1).await;
        assert_eq!(events, 1);
        let polls = polls.lock();
        let gaps: Vec<Duration> = polls.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g <= MAX_DELAY), "{gaps:?}");
        // The expired watch (second to last item) is followed by the re-list at once.
        assert_eq!(gaps.last(), Some(&Duration::ZERO));
        assert!(
            start.elapsed() >= Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
}
