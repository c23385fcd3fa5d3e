//! The tokio shell: [`MeshSocket`] and [`ChordSocket`], async handles around
//! a sans-IO [`Node`](crate::node::Node).

mod chord_socket;
mod clock;
mod conn_io;
mod direct_write;
mod driver;
mod error;
mod latency;
mod loops;
mod mesh_socket;
mod metrics;
mod metrics_http;
mod persist;
mod persister;
mod recv_queue;
mod socket_opts;
pub mod tls;
mod tls_io;

pub use chord_socket::{ChordSocket, Responsible, CONFIRM_RESEND, ITEMS_IN_FLIGHT};
pub use error::Error;
pub use latency::{ByOutcome, Histogram, Outcome, LATENCY_BUCKETS_S};
pub use mesh_socket::{split_addr, MeshSocket};
pub use metrics::{render_prometheus, MetricsSnapshot, TextFormat};
pub use metrics_http::{serve_metrics, MetricsServer};
pub use persist::{DataDir, DataDirError, Saved, MAX_SAVED_PEERS};

/// A fresh random UUID4 text, the node-id salt [`MeshSocket::bind_with`]
/// gives a config whose salt is empty.
pub fn random_salt() -> String {
    crate::wire::protocol::salt_from_bytes(rand::random())
}
