//! The shutdown signal every long-running task waits on: one trigger (a signal, `POST
//! /admin/drain`, a test), many waiters. Plain tokio, so every module may import it.

use std::sync::Arc;
use tokio::sync::watch;

/// A shutdown signal that many tasks can wait on.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Triggers a [`Shutdown`]. Clones trigger the same shutdown.
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<watch::Sender<bool>>);

impl ShutdownTrigger {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(Arc::new(tx)), Shutdown(rx))
    }
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown was triggered (or its trigger dropped).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|&v| v).await;
    }
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}
