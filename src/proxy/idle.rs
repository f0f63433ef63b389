//! The worker's idle keep-alive connections, swept once a second.
//!
//! A keep-alive connection spends most of its life waiting for its next request, so what it
//! holds while it waits is what sluice's memory per connection is. A timer of its own
//! (tokio's `Sleep`, 112 B) and a drain signal of its own (a `Notified`, 72 B) made that
//! state larger than the connection's socket and shared state together. Instead each worker
//! keeps one list of its waiting connections: an entry is the connection's waker and when
//! its idle time is up. The worker's heartbeat sweeps the list once a second and wakes the
//! connections whose time is up, so an idle timeout fires up to a second late (nginx's and
//! HAProxy's idle timers are coarse too); a listener that starts draining sweeps it at once
//! and wakes every waiting connection to look at its own listener's drain signal.
//!
//! The list is thread-local: sluice's connections live their whole life on the worker that
//! accepted them (one current-thread runtime per worker), and so do their entries.

use std::cell::{Cell, RefCell};
use std::task::Waker;

use slab::Slab;
use tokio::time::Instant;

/// One waiting connection.
struct Waiting {
    /// Wakes the connection's task (set once it has polled).
    waker: Option<Waker>,
    /// When its idle time is up.
    due: Instant,
    /// The sweep found its time up.
    ended: bool,
}

thread_local! {
    static LIST: RefCell<Slab<Waiting>> = const { RefCell::new(Slab::new()) };
    /// Bumped each time a listener on this worker starts draining.
    static DRAINS: Cell<u32> = const { Cell::new(0) };
}

/// A connection's entry in its worker's idle list, removed when the ticket is dropped.
#[derive(Debug)]
pub struct Ticket {
    key: u32,
    /// The worker's drain count when the connection started waiting.
    drains: u32,
}

/// What a waiting connection is told when it looks at its ticket.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// Keep waiting.
    Waiting,
    /// Its idle time is up: close.
    Expired,
    /// A listener on this worker started draining since it began waiting: check whether
    /// it is the connection's own.
    Drain,
}

impl Ticket {
    /// Starts waiting, idle until `due`.
    pub fn wait_until(due: Instant) -> Ticket {
        let key = LIST.with_borrow_mut(|list| {
            list.insert(Waiting {
                waker: None,
                due,
                ended: false,
            })
        });
        Ticket {
            key: u32::try_from(key).expect("fewer than 2^32 idle connections per worker"),
            drains: DRAINS.get(),
        }
    }

    /// Where the wait stands. Unless it has expired, `waker` is what the next sweep or
    /// drain wakes.
    pub fn check(&mut self, waker: &Waker) -> Wait {
        let expired = LIST.with_borrow_mut(|list| {
            let entry = &mut list[self.key as usize];
            if !entry.ended && !entry.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                entry.waker = Some(waker.clone());
            }
            entry.ended
        });
        let drains = DRAINS.get();
        if expired {
            Wait::Expired
        } else if drains != self.drains {
            self.drains = drains;
            Wait::Drain
        } else {
            Wait::Waiting
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // `try_with`: a runtime torn down with its thread may drop connections after the
        // list itself is gone.
        let _ = LIST.try_with(|list| {
            list.borrow_mut().remove(self.key as usize);
        });
    }
}

/// Wakes every waiting connection whose idle time is up (the worker's heartbeat calls this
/// once a second).
pub fn sweep() {
    let now = Instant::now();
    let wake: Vec<Waker> = LIST.with_borrow_mut(|list| {
        list.iter_mut()
            .filter(|(_, w)| !w.ended && w.due <= now)
            .filter_map(|(_, w)| {
                w.ended = true;
                w.waker.take()
            })
            .collect()
    });
    // Woken outside the borrow: on a current-thread runtime a wake only queues the task,
    // but nothing here should depend on that.
    wake.into_iter().for_each(Waker::wake);
}

/// A listener on this worker started draining: every waiting connection is woken to check
/// its own listener's signal.
pub fn drained() {
    DRAINS.set(DRAINS.get().wrapping_add(1));
    let wake: Vec<Waker> = LIST.with_borrow_mut(|list| {
        list.iter_mut()
            .filter_map(|(_, w)| w.waker.clone())
            .collect()
    });
    wake.into_iter().for_each(Waker::wake);
}

/// Whether any listener on this worker has started draining (until then a connection need
/// not look at its listener's drain signal, which takes a lock, on every request).
pub fn any_drained() -> bool {
    DRAINS.get() != 0
}

/// Connections waiting on this worker now.
#[cfg(test)]
fn waiting() -> usize {
    LIST.with_borrow(Slab::len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_ends_and_wakes_only_connections_whose_idle_time_is_up() {
        let (soon_wakes, soon_waker) = counter();
        let (late_wakes, late_waker) = counter();
        let mut soon = Ticket::wait_until(Instant::now() + Duration::from_secs(2));
        let mut late = Ticket::wait_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(soon.check(&soon_waker), Wait::Waiting);
        assert_eq!(late.check(&late_waker), Wait::Waiting);
        tokio::time::advance(Duration::from_secs(1)).await;
        sweep();
        assert_eq!(
            soon_wakes.0.load(Ordering::Relaxed),
            0,
            "woken before its time"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        sweep();
        assert_eq!(soon_wakes.0.load(Ordering::Relaxed), 1);
        assert_eq!(soon.check(&soon_waker), Wait::Expired);
        assert_eq!(late_wakes.0.load(Ordering::Relaxed), 0);
        assert_eq!(late.check(&late_waker), Wait::Waiting);
        drop((soon, late));
        assert_eq!(waiting(), 0, "dropped tickets leave the list");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_wakes_every_waiting_connection_once_to_check_its_listener() {
        let (wakes, waker) = counter();
        let mut ticket = Ticket::wait_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(ticket.check(&waker), Wait::Waiting);
        drained();
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert!(any_drained());
        assert_eq!(ticket.check(&waker), Wait::Drain);
        assert_eq!(
            ticket.check(&waker),
            Wait::Waiting,
            "told about one drain once"
        );
        drained();
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            2,
            "still waiting: woken again"
        );
    }
}
