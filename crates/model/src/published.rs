//! The current snapshot, shared by every component.
//!
//! Readers on hot paths call [`Published::load`] (lock-free, `arc-swap`); components that
//! reconcile wait on [`Published::subscribe`] for the next swap.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::Snapshot;

/// The snapshot in force, swapped whole on every (re)load.
#[derive(Debug)]
pub struct Published {
    current: ArcSwap<Snapshot>,
    /// Bumped on every swap; carries no data, readers load the snapshot themselves.
    generation: watch::Sender<u64>,
}

impl Published {
    /// Holds `first` until the first publish.
    pub fn new(first: Snapshot) -> Self {
        Published {
            current: ArcSwap::from_pointee(first),
            generation: watch::Sender::new(0),
        }
    }

    /// The snapshot in force now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot atomically and wakes the subscribers; returns the one replaced.
    pub fn publish(&self, next: impl Into<Arc<Snapshot>>) -> Arc<Snapshot> {
        let previous = self.current.swap(next.into());
        self.generation.send_modify(|g| *g += 1);
        previous
    }

    /// A receiver that sees a change after every [`Published::publish`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}
