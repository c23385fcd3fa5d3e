//! A minimal HTTP/1.1 responder for Prometheus scrapes: `GET /metrics`
//! answers [`render_prometheus`] of the socket's [`MetricsSnapshot`](super::MetricsSnapshot),
//! as OpenMetrics when the request's `Accept` names it (Prometheus does),
//! else in the classic text format; anything else a short error. One
//! request per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use super::metrics::TextFormat;
use super::{render_prometheus, ChordSocket, Error};

/// Longest request head read (a scrape's is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// A client has this long to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrapes served at once; further connections are closed unanswered.
const MAX_SCRAPES_IN_FLIGHT: usize = 16;

/// A running metrics endpoint; it stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    /// Where it listens.
    local_addr: SocketAddr,
    /// The accept loop.
    task: AbortHandle,
}

impl MetricsServer {
    /// The address it listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /metrics` for `sock` on `addr` (`HOST:PORT`, port 0 for any).
///
/// ```no_run
/// # async fn demo(sock: rs2p::ChordSocket) -> Result<(), rs2p::Error> {
/// let server = rs2p::net::serve_metrics(sock, "127.0.0.1:9464").await?;
/// println!("scrape http://{}/metrics", server.local_addr());
/// # Ok(()) }
/// ```
pub async fn serve_metrics(sock: ChordSocket, addr: &str) -> Result<MetricsServer, Error> {
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr: addr.to_owned(), source })?;
    let local_addr = listener.local_addr().map_err(|source| Error::Bind { addr: addr.to_owned(), source })?;
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES_IN_FLIGHT));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                continue; // dropped: closed unanswered
            };
            let sock = sock.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &sock)).await;
                drop(permit);
            });
        }
    });
    Ok(MetricsServer { local_addr, task: task.abort_handle() })
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, sock: &ChordSocket) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_REQUEST_BYTES {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", "request too large\n")
                .await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => {
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let open = head.lines().any(|l| l.starts_with("accept:") && l.contains("application/openmetrics-text"));
            let format = if open { TextFormat::OpenMetrics } else { TextFormat::Classic };
            let body = render_prometheus(&sock.metrics(), format);
            respond(&mut stream, "200 OK", format.content_type(), &body).await
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
