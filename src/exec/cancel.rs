//! Cancellation: a token the process's top (Ctrl-C, SIGTERM) sets and the
//! backends watch. A backend that sees it stops its running step, removes
//! what the step left outside the store (a container), and returns
//! [`super::ExecError::Interrupted`]; meanwhile it counts itself busy, so
//! whoever set the token can wait for that cleanup before the process
//! ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A cancellation token; clones share it.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<Inner>);

#[derive(Default, Debug)]
struct Inner {
    cancelled: AtomicBool,
    busy: Mutex<usize>,
    idle: Condvar,
}

/// Held while a step has something outside the store to clean up.
pub struct Busy<'a>(&'a Cancel);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut n = self.0.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.0.0.idle.notify_all();
    }
}

impl Cancel {
    /// Asks every holder to stop.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Counts the caller busy until the guard is dropped.
    pub fn busy(&self) -> Busy<'_> {
        *self.0.busy.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Busy(self)
    }

    /// How many are busy now.
    pub fn busy_count(&self) -> usize {
        *self.0.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until nobody is busy, at most `limit`; whether that happened.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut n = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self.0.idle.wait_timeout(n, left).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_busy_to_finish() {
        let c = Cancel::default();
        assert!(!c.is_cancelled());
        let c2 = c.clone();
        let worker = std::thread::spawn(move || {
            let _busy = c2.busy();
            while !c2.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        while c.busy_count() == 0 {
            std::thread::yield_now();
        }
        c.cancel();
        assert!(c.wait_idle(Duration::from_secs(10)));
        worker.join().unwrap();
        assert_eq!(c.busy_count(), 0);
    }
}
