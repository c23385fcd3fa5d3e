//! The shell's tasks: the listener, the ticker (which sleeps until the
//! node's next timer, [`crate::node::Node::poll_timeout`], or until a call
//! or a frame moves it earlier, and also tops up key-list streams as their
//! connections' queues drain), and dials.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::driver::{now, wall_now, Inner, Side, State};
use crate::chord::Room;
use crate::core::{ConnId, Time};

/// A key-list stream is topped up each tick until this many frames wait in
/// its connection's queue: more than a py2p peer drains in a tick (one frame
/// per 1.5 ms), few enough that other frames wait behind them only briefly.
const STREAM_QUEUE_FRAMES: usize = 128;
/// A key-list stream is topped up each tick until this many bytes wait in
/// its connection's queue (4 MiB a tick: about 40 MB/s to an rs2p peer).
const STREAM_QUEUE_BYTES: usize = 4 << 20;
/// Dial timeout.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn accept_loop(inner: std::sync::Weak<Inner>, listener: TcpListener) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        tracing::debug!(%from, "incoming connection");
        inner.with(|st| match st.node.on_accepted_from(from.ip(), now()) {
            Some(conn) => inner.attach(st, conn, stream, Side::Accepted),
            None if !st.node.is_closed() => tracing::warn!(%from, "connection limits reached: refusing a connection"),
            None => {}
        });
    }
}

/// Ticks the node when its timer is due, then sleeps until the next one
/// (or until [`Inner::with`] finds it moved earlier). No fixed period: an
/// idle node wakes only for its keepalives and periodic maintenance.
pub(super) async fn tick_loop(inner: std::sync::Weak<Inner>, wake: Arc<tokio::sync::Notify>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let next = strong.with(|st| {
            let t = now();
            if st.node.poll_timeout().is_some_and(|due| due <= t) {
                // The wall clock is read beside `t`: paired with the node's
                // clock of its last event instead, it ran ahead by the time
                // since then (up to a keepalive period), so a set could be
                // dated after a delete that followed it.
                st.node.advance_clock(t);
                st.node.set_wall_clock(wall_now());
                st.node.on_tick(t);
            }
            feed_key_streams(st);
            let next = st.node.poll_timeout().unwrap_or(Time::MAX);
            strong.tick_at.store(next, Ordering::Relaxed);
            next
        });
        drop(strong);
        if next == Time::MAX {
            wake.notified().await;
            continue;
        }
        let sleep = Duration::from_millis(next.saturating_sub(now()));
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = wake.notified() => {}
        }
    }
}

/// Tops up every key-list stream to what its connection's queue can take.
fn feed_key_streams(st: &mut State) {
    for conn in st.node.key_streams() {
        let Some(io) = st.conns.get(&conn) else {
            continue;
        };
        let queued_frames = io.tx.max_capacity() - io.tx.capacity();
        let queued_bytes = io.queued.load(Ordering::Relaxed);
        let room = Room {
            frames: STREAM_QUEUE_FRAMES.saturating_sub(queued_frames),
            bytes: STREAM_QUEUE_BYTES.saturating_sub(queued_bytes),
        };
        if room.frames > 0 && room.bytes > 0 {
            st.node.stream_keys(conn, room);
        }
    }
}

pub(super) async fn dial(inner: Arc<Inner>, conn: ConnId, host: String, port: u16) {
    let res = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect((host.as_str(), port))).await;
    match res {
        Ok(Ok(stream)) => inner.with(|st| {
            inner.attach(st, conn, stream, Side::Dialed(host));
            st.node.on_dialed(conn, now());
        }),
        Ok(Err(e)) => inner.node(|n| n.on_dial_failed(conn, &e.to_string(), now())),
        Err(_) => inner.node(|n| n.on_dial_failed(conn, "timed out", now())),
    }
}
