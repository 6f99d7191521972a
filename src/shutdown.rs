//! The shutdown signal every long-running task waits on: one trigger (a signal, `POST
//! /admin/drain`, a test), many waiters. Plain tokio, so every module may import it.

use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// A shutdown signal that many tasks can wait on.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    /// Notified (all waiters) when shutdown is triggered or the trigger dropped: the small
    /// waiter idle connections keep ([`Shutdown::triggered`]).
    notify: Arc<Notify>,
}

/// Triggers a [`Shutdown`]. Clones trigger the same shutdown.
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<Trigger>);

struct Trigger {
    tx: watch::Sender<bool>,
    notify: Arc<Notify>,
}

impl Drop for Trigger {
    /// The trigger gone counts as shutdown (as for the watch channel's waiters).
    fn drop(&mut self) {
        self.notify.notify_waiters();
    }
}

impl ShutdownTrigger {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        let notify = Arc::new(Notify::new());
        let trigger = Trigger {
            tx,
            notify: notify.clone(),
        };
        (ShutdownTrigger(Arc::new(trigger)), Shutdown { rx, notify })
    }
    pub fn trigger(&self) {
        self.0.tx.send_replace(true);
        self.0.notify.notify_waiters();
    }
}

impl Shutdown {
    /// Resolves once shutdown was triggered (or its trigger dropped).
    pub async fn wait(mut self) {
        let _ = self.rx.wait_for(|&v| v).await;
    }
    /// The waiter [`triggered`](Shutdown::triggered) awaits, for a future that keeps it in its
    /// own fields. A trigger reaches it from the moment it is made, polled or not (tokio's
    /// `notify_waiters` wakes every `Notified` made before the call), so whoever makes it
    /// checks [`is_over`](Shutdown::is_over) after making it.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
    /// [`wait`](Shutdown::wait) on a borrowed signal, as a smaller future (one `Notify`
    /// waiter): what every idle connection keeps while it waits.
    pub async fn triggered(&self) {
        let notified = self.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the flag is read: a trigger in between still wakes it.
        notified.as_mut().enable();
        if self.is_over() {
            return;
        }
        notified.await;
    }
    /// Whether [`wait`](Shutdown::wait) would resolve now: triggered, or the trigger dropped.
    pub fn is_over(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_on_the_trigger_and_on_its_drop() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for drop_it in [false, true] {
                let (trigger, shutdown) = ShutdownTrigger::new();
                let waiters = [shutdown.clone(), shutdown.clone()]
                    .map(|s| tokio::spawn(async move { s.triggered().await }));
                let waited = tokio::spawn(shutdown.clone().wait());
                tokio::task::yield_now().await;
                assert!(!shutdown.is_over());
                if drop_it {
                    drop(trigger);
                } else {
                    trigger.trigger();
                    assert!(shutdown.is_triggered());
                }
                for w in waiters {
                    w.await.unwrap();
                }
                waited.await.unwrap();
                assert!(shutdown.is_over());
                // A waiter that comes after the fact returns at once.
                shutdown.triggered().await;
            }
        });
    }
}
