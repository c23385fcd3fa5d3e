//! What `rs2p bench` measures beside the DHT, in the same run: the TCP
//! loopback round trip (the floor a get cannot beat) and the CPU time the
//! process spends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Bytes sent each way per floor round trip: about the size of a get's
/// retrieve and its answer between rs2p peers.
pub const FLOOR_MESSAGE: usize = 200;
/// Round trips before timing starts (connection warm-up, page faults).
const FLOOR_WARMUP: usize = 1_000;
/// Timed round trips.
const FLOOR_ROUND_TRIPS: usize = 20_000;

/// TCP loopback round trips between two threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Floor {
    pub rtt_p50_us: f64,
    pub rtt_p99_us: f64,
}

/// Measures the round trip of a [`FLOOR_MESSAGE`]-byte message between two
/// threads over TCP on 127.0.0.1 with `TCP_NODELAY`, the same way each time:
/// one echo thread, one timing thread, blocking sockets.
pub fn tcp_floor() -> std::io::Result<Floor> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; FLOOR_MESSAGE];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let msg = [b'f'; FLOOR_MESSAGE];
    let mut buf = [0u8; FLOOR_MESSAGE];
    let mut lat = Vec::with_capacity(FLOOR_ROUND_TRIPS);
    for i in 0..FLOOR_WARMUP + FLOOR_ROUND_TRIPS {
        let t = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut buf)?;
        if i >= FLOOR_WARMUP {
            lat.push(t.elapsed());
        }
    }
    drop(s);
    echo.join().map_err(|_| std::io::Error::other("echo thread panicked"))??;
    lat.sort();
    Ok(Floor { rtt_p50_us: super::bench::pct(&lat, 0.50), rtt_p99_us: super::bench::pct(&lat, 0.99) })
}

/// The same round trip between two tokio tasks on the runtime the bench's
/// ring runs on: what the async runtime's wake-ups add to the floor.
pub async fn tokio_floor() -> std::io::Result<Floor> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; FLOOR_MESSAGE];
        loop {
            match s.read_exact(&mut buf).await {
                Ok(_) => s.write_all(&buf).await?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok::<(), std::io::Error>(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let msg = [b'f'; FLOOR_MESSAGE];
    let mut buf = [0u8; FLOOR_MESSAGE];
    let mut lat = Vec::with_capacity(FLOOR_ROUND_TRIPS);
    for i in 0..FLOOR_WARMUP + FLOOR_ROUND_TRIPS {
        let t = Instant::now();
        s.write_all(&msg).await?;
        s.read_exact(&mut buf).await?;
        if i >= FLOOR_WARMUP {
            lat.push(t.elapsed());
        }
    }
    drop(s);
    echo.await.map_err(|_| std::io::Error::other("echo task failed"))??;
    lat.sort();
    Ok(Floor { rtt_p50_us: super::bench::pct(&lat, 0.50), rtt_p99_us: super::bench::pct(&lat, 0.99) })
}

/// CPU time (user + system) of every thread of this process so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to an rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU microseconds per operation over a span measured with [`process_cpu`].
pub fn cpu_us_per(before: Duration, after: Duration, ops: usize) -> f64 {
    after.saturating_sub(before).as_secs_f64() * 1e6 / ops.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_a_positive_round_trip_and_cpu_time_moves() {
        let before = process_cpu();
        let f = tcp_floor().expect("loopback works");
        assert!(f.rtt_p50_us > 0.0 && f.rtt_p99_us >= f.rtt_p50_us, "{f:?}");
        assert!(process_cpu() > before, "20,000 round trips take some CPU");
    }
}
