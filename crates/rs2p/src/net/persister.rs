//! The persister: the node's journal committed to the data directory in
//! batches (one transaction, one fsync, while the next batch gathers),
//! with the peers and the time the node was last alive.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::driver::{wall_now, Inner};
use crate::core::Time;

/// How often the data directory records that the node is alive: a node
/// restarted after longer than `Config::tombstone_horizon_ms` away drops
/// its items, and this is how it knows (to within this much).
const ALIVE_EVERY_MS: Time = 60_000;

/// Commits journaled changes as they come: each commit takes everything
/// gathered while the previous one ran (group commit: one fsync per batch).
pub(super) async fn persist_loop(inner: std::sync::Weak<Inner>, wake: Arc<Notify>) {
    let mut failures = 0u32;
    loop {
        let wait = if failures > 0 { Duration::from_millis(500 << failures.min(5)) } else { Duration::from_secs(1) };
        // A periodic pass also records the peers, which change without a journal entry.
        let _ = tokio::time::timeout(wait, wake.notified()).await;
        let Some(strong) = inner.upgrade() else { return };
        if strong.commit_pending().await {
            failures = 0;
        } else {
            failures += 1;
        }
    }
}

impl Inner {
    /// Commits every journaled change now (the persister may be stopped).
    pub async fn persist_now(self: &Arc<Self>) {
        if self.data.is_some() {
            self.commit_pending().await;
        }
    }

    /// Takes the journal and commits it in one transaction, off the
    /// runtime's threads. Returns false if the commit failed (logged; the
    /// batch is kept for the next try).
    ///
    /// The commit holds the commit lock, and hands a failed batch back to
    /// the node, from its own thread: if this task is aborted meanwhile (the
    /// socket closing), the commit still finishes, and the final commit and
    /// the release of the directory wait for it, so no change is lost.
    pub(super) async fn commit_pending(self: &Arc<Self>) -> bool {
        let Some(data) = self.data.clone() else { return true };
        let one_at_a_time = Arc::clone(&self.commit_lock).lock_owned().await;
        let (changes, mut peers) = self.with(|st| (st.node.take_changes(), st.node.seeding_peer_addrs()));
        peers.truncate(super::MAX_SAVED_PEERS);
        {
            let mut written = self.written_peers.lock().unwrap_or_else(|e| e.into_inner());
            if peers.is_empty() || *written == peers {
                peers.clear();
            } else {
                *written = peers.clone();
            }
        }
        let wall = wall_now();
        let alive = {
            let mut written = self.written_alive.lock().unwrap_or_else(|e| e.into_inner());
            let due = wall.saturating_sub(*written) >= ALIVE_EVERY_MS;
            if due {
                *written = wall;
            }
            due
        };
        if changes.is_empty() && peers.is_empty() && !alive {
            return true;
        }
        let inner = Arc::clone(self);
        let res = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = one_at_a_time;
            if alive {
                if let Err(e) = data.save_alive(wall) {
                    tracing::warn!("could not record the time in the data directory: {e}");
                }
            }
            let res = if changes.is_empty() { Ok(()) } else { data.commit(&changes) };
            if !peers.is_empty() {
                if let Err(e) = data.save_peers(&peers, wall_now()) {
                    tracing::warn!("could not record peers in the data directory: {e}");
                }
            }
            match res {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!("could not write to the data directory: {e}; will retry");
                    inner.with(|st| st.node.return_changes(changes));
                    false
                }
            }
        })
        .await;
        match res {
            Ok(done) => done,
            Err(e) => {
                tracing::error!("data directory writer failed: {e}");
                false
            }
        }
    }
}
