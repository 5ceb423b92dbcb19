//! The driver abstraction: anything that turns a dispenser line into events.

use std::future::Future;

use forecourt_events::DispenserEvent;
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum DispenserError {
    #[error("invalid dispenser configuration: {0}")]
    Config(String),
    /// The consumer dropped the event channel: nobody listens any more.
    #[error("event channel closed")]
    EventsClosed,
}

/// A dispenser protocol driver. `run` owns the line until `shutdown` turns true (or its sender is
/// dropped); device faults are retried inside, never returned.
pub trait DispenserDriver: Send + 'static {
    fn run(
        self,
        events: mpsc::Sender<DispenserEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), DispenserError>> + Send;
}
