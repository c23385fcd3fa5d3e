//! Options set on every TCP connection.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::core::ConnId;

/// TCP keepalive: first probe after this much idle time, then one every as
/// long; a link whose probes all go unanswered is reset by the kernel.
const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
/// Unanswered TCP keepalive probes before the kernel resets the link.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
const TCP_KEEPALIVE_PROBES: u32 = 3;

/// No Nagle delay (frames are small and latency matters), and the kernel's
/// keepalive backing the node's: it also probes a link whose peer host
/// vanished while our queue toward it is not empty.
pub(super) fn tune(stream: &TcpStream, conn: ConnId) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE_IDLE).with_interval(TCP_KEEPALIVE_IDLE);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let keepalive = keepalive.with_retries(TCP_KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(conn = conn.0, "TCP keepalive not set: {e}");
    }
}
