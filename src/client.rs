//! `set`, `get`, `del`, `keys`: short-lived leeching clients.

use std::io::Write;
use std::time::Duration;

use rs2p::core::{Config, GetError};
use rs2p::net::split_addr;
use rs2p::{ChordSocket, Error};
use tokio::time::Instant;

use super::{net_failure, ClientArgs, Failure, EXIT_NOT_FOUND, EXIT_UNREACHABLE};

/// Binds a leeching node, connects to the peer, and waits until a seeding
/// node is known (without one, a client could not route anything).
pub(super) async fn open(args: &ClientArgs) -> Result<ChordSocket, Failure> {
    open_by(args, None).await
}

/// [`open`] for a command whose whole run ends at `deadline`: connecting
/// and waiting for a seeding node stop there too (exit 3: the peer did not
/// answer in time).
pub(super) async fn open_until(args: &ClientArgs, deadline: Deadline) -> Result<ChordSocket, Failure> {
    open_by(args, Some(deadline)).await
}

async fn open_by(args: &ClientArgs, deadline: Option<Deadline>) -> Result<ChordSocket, Failure> {
    let (host, port) = split_addr(&args.bind).map_err(net_failure)?;
    let mut cfg = Config::chord(&host, port);
    args.tls.apply(&args.subnet, &mut cfg)?;
    let sock = ChordSocket::bind_with(&args.bind, cfg).await.map_err(net_failure)?;
    let reach = async {
        sock.connect(&args.peer).await.map_err(net_failure)?;
        let deadline = Instant::now() + args.timeout().min(Duration::from_secs(5));
        while sock.data_storing().is_empty() {
            if Instant::now() >= deadline {
                return Err(Failure::new(
                    EXIT_UNREACHABLE,
                    format!("no seeding node reachable through {} (has it joined the ring?)", args.peer),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    };
    let reached = match deadline {
        None => reach.await,
        Some(d) => tokio::time::timeout_at(d.at, reach).await.unwrap_or_else(|_| {
            Err(Failure::new(
                EXIT_UNREACHABLE,
                format!("no seeding node reached through {} within the timeout ({})", args.peer, d.secs()),
            ))
        }),
    };
    match reached {
        Ok(()) => Ok(sock),
        Err(f) => {
            let _ = sock.shutdown().await;
            Err(f)
        }
    }
}

/// Without `--timeout`, the bound of a whole `keys`, `import` or `export`
/// run (each step is bounded by [`super::DEFAULT_TIMEOUT`] too).
const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// The end of a client command's whole run, `--timeout` after it began:
/// `keys`, `import` and `export` stop there, whatever they were waiting
/// for (the key list, a batch of reads), exit 1 and say so in one line.
/// Without `--timeout`, the run has [`RUN_LIMIT`] and each step (the key
/// list while it keeps arriving, a batch of reads or of confirmations)
/// 10 s, as before runs were bounded as a whole.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    timeout: Duration,
    /// The bound of one step, when `--timeout` was not given.
    pub(super) step: Option<Duration>,
}

impl Deadline {
    /// `timeout` from now.
    pub(super) fn after(timeout: Duration) -> Deadline {
        Deadline { at: Instant::now() + timeout, timeout, step: None }
    }

    /// The deadline of a whole `keys`, `import` or `export` run.
    pub(super) fn for_run(args: &ClientArgs) -> Deadline {
        match args.timeout {
            Some(t) => Deadline::after(t),
            None => Deadline { step: Some(super::DEFAULT_TIMEOUT), ..Deadline::after(RUN_LIMIT) },
        }
    }

    /// The deadline of one step of the run: the run's own, or (without
    /// `--timeout`) one step's time from now within it.
    pub(super) fn step_end(&self) -> Deadline {
        match self.step {
            Some(s) => Deadline { at: self.at.min(Instant::now() + s), timeout: s, step: None },
            None => *self,
        }
    }

    /// Time left (zero once passed).
    pub(super) fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub(super) fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// When it passes.
    pub(super) fn at(&self) -> Instant {
        self.at
    }

    /// The timeout, as given: `4 s`, `0.5 s`.
    pub(super) fn secs(&self) -> String {
        format!("{} s", self.timeout.as_secs_f64())
    }

    /// `VERB did not finish within the timeout (N s)DETAIL`, exit 1.
    pub(super) fn failure(&self, verb: &str, detail: &str) -> Failure {
        Failure::new(EXIT_NOT_FOUND, format!("{verb} did not finish within the timeout ({}){detail}", self.secs()))
    }
}

fn get_failure(key: &str, e: Error) -> Failure {
    match e {
        Error::Get(GetError::NotFound) => Failure::new(EXIT_NOT_FOUND, format!("key not found: {key}")),
        Error::Get(GetError::Unavailable) => Failure::new(
            EXIT_NOT_FOUND,
            format!("unavailable: the owners of key {key} could not be reached (it may exist)"),
        ),
        Error::Get(GetError::NoAgreement) => {
            Failure::new(EXIT_NOT_FOUND, format!("no value agreed by 3 of the 5 tables for key {key}"))
        }
        Error::Get(GetError::Timeout) => Failure::new(EXIT_NOT_FOUND, format!("timed out waiting for key {key}")),
        other => net_failure(other),
    }
}

pub async fn get(args: &ClientArgs, key: &str) -> Result<(), Failure> {
    let sock = open(args).await?;
    let result = sock.get_timeout(key, args.timeout()).await;
    let _ = sock.shutdown().await;
    let value = result.map_err(|e| get_failure(key, e))?;
    let mut out = std::io::stdout().lock();
    let written = out.write_all(&value).and_then(|_| out.write_all(b"\n")).and_then(|_| out.flush());
    written.map_err(|e| Failure::new(super::EXIT_RUNTIME, format!("cannot write to stdout: {e}")))
}

/// First re-send of a change that is not visible yet; the gap doubles after each.
const RESEND_AFTER: Duration = Duration::from_millis(1000);

/// Makes a change with `send`, then polls `get` until `done` says it is
/// visible, or the timeout passes. The change is sent again while it is not
/// visible (1 s, 2 s, 4 s ... after the last send): a store lost on the way,
/// e.g. in a py2p link that drops frames under load (D2, D24), is repaired.
/// Sending a value twice is harmless, and so is a delete: a delete bound for
/// a py2p node is sent only where the item is still held (D9).
async fn change_and_confirm(
    sock: &ChordSocket,
    key: &str,
    timeout: Duration,
    send: impl Fn() -> Result<(), Error>,
    done: impl Fn(&Result<bytes::Bytes, Error>) -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    let deadline = start + timeout;
    send().map_err(|e| e.to_string())?;
    let (mut sent_at, mut gap, mut sends) = (start, RESEND_AFTER, 1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = sock.get_timeout(key, left.clamp(Duration::from_millis(100), Duration::from_secs(2))).await;
        if done(&result) {
            if sends > 1 {
                tracing::info!(key, sends, "the change became visible after re-sending it");
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(match result {
                Ok(v) => format!("still reads {:?}", String::from_utf8_lossy(&v)),
                Err(e) => e.to_string(),
            });
        }
        if sent_at.elapsed() >= gap {
            tracing::debug!(key, ?result, "change not visible yet: sending it again");
            send().map_err(|e| e.to_string())?;
            sends += 1;
            sent_at = Instant::now();
            gap *= 2;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn set(args: &ClientArgs, key: &str, value: &str) -> Result<(), Failure> {
    if value.is_empty() {
        return Err(Failure::new(super::EXIT_USAGE, "an empty value deletes: use `rs2p del KEY`"));
    }
    let sock = open(args).await?;
    let want = value.as_bytes().to_vec();
    let res = change_and_confirm(
        &sock,
        key,
        args.timeout(),
        || sock.set(key, value.to_owned()),
        |r| matches!(r, Ok(v) if v[..] == want[..]),
    )
    .await;
    let _ = sock.shutdown().await;
    res.map_err(|why| Failure::new(EXIT_NOT_FOUND, format!("set of {key} not readable in time: {why}")))
}

pub async fn del(args: &ClientArgs, key: &str) -> Result<(), Failure> {
    let sock = open(args).await?;
    let res = change_and_confirm(
        &sock,
        key,
        args.timeout(),
        || sock.delete(key),
        |r| matches!(r, Err(Error::Get(GetError::NotFound))),
    )
    .await;
    let _ = sock.shutdown().await;
    res.map_err(|why| Failure::new(EXIT_NOT_FOUND, format!("delete of {key} not visible in time: {why}")))
}

/// Waits for the whole key list, until `deadline` (`verb` names the
/// command in the failure).
pub(super) async fn whole_key_list(
    sock: &ChordSocket,
    deadline: Deadline,
    verb: &str,
) -> Result<Vec<bytes::Bytes>, Failure> {
    // The first `keys()` asks for the list (a leeching client holds none
    // before); it is copied out only once complete.
    sock.keys();
    // Without --timeout: the list may take as long as it keeps arriving.
    let mut step = deadline.step_end();
    let mut seen = 0;
    loop {
        if sock.key_list_status() == rs2p::chord::KeyListStatus::Complete {
            if sock.key_walk_failed() {
                return Err(Failure::new(
                    EXIT_NOT_FOUND,
                    "the walk of the ring could not reach every node: the key list would be partial",
                ));
            }
            return Ok(sock.keys());
        }
        let now = sock.stats().keys;
        if now > seen {
            seen = now;
            step = deadline.step_end();
        }
        if step.passed() {
            return Err(step.failure(verb, &format!(": the key list did not finish arriving ({seen} keys so far)")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn keys(args: &ClientArgs) -> Result<(), Failure> {
    let deadline = Deadline::for_run(args);
    let sock = open_until(args, deadline).await?;
    let keys = whole_key_list(&sock, deadline, "keys").await;
    let _ = sock.shutdown().await;
    let keys = keys?;
    let mut out = std::io::stdout().lock();
    for k in keys {
        let _ = out.write_all(&k);
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
    Ok(())
}
