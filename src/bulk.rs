//! `import` and `export`: bulk load and backup through one peer.
//!
//! Both use one line per key. The default format is `KEY<TAB>VALUE`, with
//! backslash escapes so that any bytes fit on a line: `\\` (backslash), `\t`,
//! `\n`, `\r`, and `\xHH` for any other control byte or byte that is not part
//! of valid UTF-8. `--json` uses JSON lines instead: `{"key": .., "value": ..}`
//! with text strings, or `"key_hex"` / `"value_hex"` for bytes that are not
//! UTF-8. An export read back by import restores the same bytes.
//!
//! `--timeout` bounds the whole run of either (reaching the peer, the key
//! list, every batch of reads and sets): when it passes, the command stops,
//! prints its summary and exits 1 with one line saying how far it got.

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::Args;
use rs2p::core::GetError;
use rs2p::net::ITEMS_IN_FLIGHT;
use rs2p::{ChordSocket, Error};
use tokio::time::Instant;

use super::client::{open_until, whole_key_list, Deadline};
use super::progress::Progress;
use super::{ClientArgs, Failure, EXIT_NOT_FOUND, EXIT_RUNTIME, EXIT_USAGE};

/// Keys set, then confirmed, per round: enough to keep the ring busy, few
/// enough that a round's values stay small in memory.
const CHUNK: usize = 4096;
/// A change not yet readable is sent again after this long (doubling after).
const RESEND_AFTER: Duration = Duration::from_millis(1000);
/// Failures listed one by one in the summary (the rest are counted).
const MAX_LISTED_FAILURES: usize = 20;
/// Seconds between progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one round of confirming reads (then the unconfirmed
/// are sent again).
const CONFIRM_ROUND: Duration = Duration::from_secs(2);
/// How long past the deadline the whole run may take before it is cut
/// short from outside (the reads stop at the deadline themselves; this
/// is a safety net).
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// File of lines to import (standard input when absent).
    pub file: Option<std::path::PathBuf>,
    /// Lines are JSON objects `{"key": .., "value": ..}` instead of `KEY<TAB>VALUE`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Write JSON lines `{"key": .., "value": ..}` instead of `KEY<TAB>VALUE`.
    #[arg(long)]
    pub json: bool,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Escapes bytes for the tab-separated format.
pub fn escape(data: &[u8], out: &mut Vec<u8>) {
    let mut rest = data;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let valid = std::str::from_utf8(&rest[..e.valid_up_to()]).expect("checked prefix");
                (valid, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for ch in valid.chars() {
            match ch {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                c if (c as u32) < 0x20 || c as u32 == 0x7F => {
                    out.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes())
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let bad_start = valid.len();
        for b in &rest[bad_start..bad_start + bad] {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
        rest = &rest[bad_start + bad..];
    }
}

/// Reverses [`escape`].
pub fn unescape(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        match text.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4).ok_or("truncated \\x escape")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "bad \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad \\x escape {hex:?}"))?);
                i += 4;
                continue;
            }
            Some(&c) => return Err(format!("unknown escape \\{}", char::from(c))),
            None => return Err("a line ends in a lone backslash".to_owned()),
        }
        i += 2;
    }
    Ok(out)
}

/// One line of the export format.
pub fn format_line(key: &[u8], value: &[u8], json: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 16);
    if json {
        let mut obj = serde_json::Map::new();
        for (name, data) in [("key", key), ("value", value)] {
            match std::str::from_utf8(data) {
                Ok(s) => obj.insert(name.to_owned(), s.into()),
                Err(_) => obj.insert(format!("{name}_hex"), hex(data).into()),
            };
        }
        out.extend_from_slice(serde_json::Value::Object(obj).to_string().as_bytes());
    } else {
        escape(key, &mut out);
        out.push(b'\t');
        escape(value, &mut out);
    }
    out.push(b'\n');
    out
}

/// Parses one line (without its newline) of either format.
pub fn parse_line(line: &[u8], json: bool) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (key, value) = if json {
        let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
        let field = |name: &str| -> Result<Vec<u8>, String> {
            if let Some(s) = v.get(name).and_then(|s| s.as_str()) {
                return Ok(s.as_bytes().to_vec());
            }
            match v.get(format!("{name}_hex")).and_then(|s| s.as_str()) {
                Some(h) => unhex(h).ok_or_else(|| format!("{name}_hex is not hex")),
                None => Err(format!("no \"{name}\" (or \"{name}_hex\") string")),
            }
        };
        (field("key")?, field("value")?)
    } else {
        let tab = line.iter().position(|&b| b == b'\t').ok_or("no TAB between key and value")?;
        (unescape(&line[..tab])?, unescape(&line[tab + 1..])?)
    };
    if key.is_empty() {
        return Err("empty key".to_owned());
    }
    if value.is_empty() {
        return Err("empty value (an empty value would delete the key)".to_owned());
    }
    Ok((key, value))
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Progress and failures of a bulk run.
struct Tally {
    start: Instant,
    /// The bar or progress lines (stderr).
    bar: Progress,
    done: u64,
    failed: u64,
    /// Keys not read or confirmed because the deadline passed first.
    unfinished: u64,
    listed: Vec<String>,
}

impl Tally {
    fn new(verb: &str) -> Tally {
        let now = Instant::now();
        Tally {
            start: now,
            bar: Progress::stderr(verb, None).every(PROGRESS_EVERY),
            done: 0,
            failed: 0,
            unfinished: 0,
            listed: Vec::new(),
        }
    }

    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.listed.len() < MAX_LISTED_FAILURES {
            self.listed.push(what);
        }
    }

    fn rate(&self) -> f64 {
        self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    fn progress(&mut self, verb: &str, total: Option<u64>) {
        if let Some(t) = total {
            self.bar.set_total(t);
        }
        let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
        let (done, rate, failed, secs) = (self.done, self.rate(), self.failed, self.start.elapsed().as_secs_f64());
        self.bar
            .update(Some(done), || format!("{verb} {done}{of} keys, {rate:.0} keys/s, {failed} failed ({secs:.1} s)"));
    }

    /// Prints the summary; `Err(over)` when the deadline cut the run short.
    fn summary(&mut self, verb: &str, over: Option<Failure>) -> Result<(), Failure> {
        self.bar.finish();
        let unfinished =
            if self.unfinished > 0 { format!(", {} not done in time", self.unfinished) } else { String::new() };
        eprintln!(
            "{verb} {} keys in {:.1} s ({:.0} keys/s); {} failed{unfinished}",
            self.done,
            self.start.elapsed().as_secs_f64(),
            self.rate(),
            self.failed
        );
        for f in &self.listed {
            eprintln!("  failed: {f}");
        }
        if self.failed > self.listed.len() as u64 {
            eprintln!("  ... and {} more", self.failed - self.listed.len() as u64);
        }
        if let Some(over) = over {
            return Err(over);
        }
        if self.failed > 0 {
            return Err(Failure::new(EXIT_NOT_FOUND, format!("{} of the keys failed", self.failed)));
        }
        Ok(())
    }
}

/// The reads of `keys`, [`ITEMS_IN_FLIGHT`] at a time, each batch given
/// what is left until `deadline` (at most `cap`); keys whose batch would
/// start after the deadline are not asked for (`Err(Timeout)`).
async fn get_until<K: AsRef<[u8]>>(
    sock: &ChordSocket,
    keys: &[K],
    deadline: Deadline,
    cap: Duration,
) -> Vec<Result<bytes::Bytes, Error>> {
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(ITEMS_IN_FLIGHT) {
        let left = deadline.left().min(cap);
        if left.is_zero() {
            out.extend(batch.iter().map(|_| Err(GetError::Timeout.into())));
        } else {
            out.extend(sock.get_many(batch, left).await);
        }
    }
    out
}

/// Pairs not confirmed by [`confirm`].
struct Unconfirmed {
    /// Read back wrong or failed, with why.
    failed: Vec<(Vec<u8>, String)>,
    /// Still waiting when the deadline passed.
    late: Vec<Vec<u8>>,
}

/// Waits until every pair reads back with its value, sending those not yet
/// readable again (1 s, 2 s, 4 s ... after the last send), until `deadline`;
/// returns those not readable then.
async fn confirm(sock: &ChordSocket, mut pending: Vec<(Vec<u8>, Vec<u8>)>, deadline: Deadline) -> Unconfirmed {
    let (mut sent_at, mut gap) = (Instant::now(), RESEND_AFTER);
    loop {
        let keys: Vec<&[u8]> = pending.iter().map(|(k, _)| &k[..]).collect();
        let got = get_until(sock, &keys, deadline, CONFIRM_ROUND).await;
        let mut still = Vec::new();
        // Why each of `still` is not confirmed (None: its read timed out).
        let mut why = Vec::new();
        for ((k, v), r) in pending.into_iter().zip(got) {
            match r {
                Ok(read) if read[..] == v[..] => {}
                other => {
                    why.push(match other {
                        Ok(_) => Some("reads another value".to_owned()),
                        Err(Error::Get(GetError::Timeout)) => None,
                        Err(e) => Some(e.to_string()),
                    });
                    still.push((k, v));
                }
            }
        }
        if still.is_empty() {
            return Unconfirmed { failed: Vec::new(), late: Vec::new() };
        }
        if deadline.passed() {
            let mut left = Unconfirmed { failed: Vec::new(), late: Vec::new() };
            for ((k, _), why) in still.into_iter().zip(why) {
                match why {
                    Some(why) => left.failed.push((k, why)),
                    None => left.late.push(k),
                }
            }
            return left;
        }
        if sent_at.elapsed() >= gap {
            for (k, v) in &still {
                if sock.set(k, v.clone()).is_err() {
                    let failed = still.into_iter().map(|(k, _)| (k, "the socket closed".to_owned())).collect();
                    return Unconfirmed { failed, late: Vec::new() };
                }
            }
            sent_at = Instant::now();
            gap *= 2;
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`confirm`], counting what was confirmed, what failed and what the
/// deadline left unconfirmed.
async fn confirm_into(sock: &ChordSocket, pairs: Vec<(Vec<u8>, Vec<u8>)>, deadline: Deadline, tally: &mut Tally) {
    let n = pairs.len() as u64;
    let left = confirm(sock, pairs, deadline.step_end()).await;
    tally.done += n - left.failed.len() as u64 - left.late.len() as u64;
    if deadline.step.is_some() {
        // Without --timeout a batch has 10 s: what is late then failed.
        for key in &left.late {
            tally.fail(format!("{}: not readable within {} s", show_key(key), super::DEFAULT_TIMEOUT.as_secs()));
        }
    } else {
        tally.unfinished += left.late.len() as u64;
    }
    for (key, why) in left.failed {
        tally.fail(format!("{}: {why}", show_key(&key)));
    }
}

fn show_key(key: &[u8]) -> String {
    let mut out = Vec::new();
    escape(key, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn import(args: &ImportArgs) -> Result<(), Failure> {
    let reader: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path)
                .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot read {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let deadline = Deadline::for_run(&args.client);
    let sock = open_until(&args.client, deadline).await?;
    let result = tokio::time::timeout_at(deadline.at() + DEADLINE_GRACE, import_lines(&sock, reader, args, deadline))
        .await
        .unwrap_or_else(|_| Err(deadline.failure("import", "")));
    let _ = sock.shutdown().await;
    result
}

async fn import_lines(
    sock: &ChordSocket,
    mut reader: Box<dyn BufRead>,
    args: &ImportArgs,
    deadline: Deadline,
) -> Result<(), Failure> {
    let mut tally = Tally::new("imported");
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    // The chunk set last, confirmed while the next one is being set.
    let mut in_flight: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut eof = false;
    while !eof {
        let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot read the input: {e}")))?;
            if n == 0 {
                eof = true;
                break;
            }
            line_no += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            match parse_line(line, args.json) {
                Ok(pair) => chunk.push(pair),
                Err(why) => tally.fail(format!("line {line_no}: {why}")),
            }
        }
        // A key set again later in the input: the later value is the one to confirm.
        let mut latest = std::collections::HashMap::with_capacity(chunk.len());
        for (i, (k, _)) in chunk.iter().enumerate() {
            latest.insert(k.clone(), i);
        }
        let chunk: Vec<_> =
            chunk.into_iter().enumerate().filter(|(i, (k, _))| latest[k] == *i).map(|(_, p)| p).collect();
        in_flight.retain(|(k, _)| !latest.contains_key(k));
        for (k, v) in &chunk {
            sock.set(k, v.clone()).map_err(super::net_failure)?;
        }
        let earlier = std::mem::replace(&mut in_flight, chunk);
        confirm_into(sock, earlier, deadline, &mut tally).await;
        tally.progress("imported", None);
        if deadline.passed() {
            break;
        }
    }
    confirm_into(sock, std::mem::take(&mut in_flight), deadline, &mut tally).await;
    let over = (tally.unfinished > 0 || !eof).then(|| {
        let rest = if eof { "" } else { "; the rest of the input was not read" };
        let detail = format!(
            ": {} keys confirmed, {} failed, {} not confirmed yet{rest}",
            tally.done, tally.failed, tally.unfinished
        );
        deadline.failure("import", &detail)
    });
    tally.summary("imported", over)
}

pub async fn export(args: &ExportArgs) -> Result<(), Failure> {
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot write {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let deadline = Deadline::for_run(&args.client);
    let sock = open_until(&args.client, deadline).await?;
    let result = tokio::time::timeout_at(deadline.at() + DEADLINE_GRACE, export_to(&sock, &mut out, args, deadline))
        .await
        .unwrap_or_else(|_| Err(deadline.failure("export", "")));
    let _ = sock.shutdown().await;
    result
}

async fn export_to(
    sock: &ChordSocket,
    out: &mut Box<dyn Write>,
    args: &ExportArgs,
    deadline: Deadline,
) -> Result<(), Failure> {
    let keys = whole_key_list(sock, deadline, "export").await?;
    let total = keys.len() as u64;
    let mut tally = Tally::new("exported");
    let mut vanished = 0u64;
    // Batches of the gets in flight at once, each with the time left.
    for chunk in keys.chunks(ITEMS_IN_FLIGHT) {
        let got = get_until(sock, chunk, deadline, deadline.step.unwrap_or(deadline.left())).await;
        for (key, r) in chunk.iter().zip(got) {
            match r {
                Ok(value) => {
                    out.write_all(&format_line(key, &value, args.json))
                        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write the output: {e}")))?;
                    tally.done += 1;
                }
                // Deleted since the list was taken: not part of the data.
                Err(Error::Get(GetError::NotFound)) => vanished += 1,
                // Each read is given the time left: it timed out at the deadline.
                Err(Error::Get(GetError::Timeout)) if deadline.step.is_none() || deadline.passed() => {
                    tally.unfinished += 1
                }
                Err(e) => tally.fail(format!("{}: {e}", show_key(key))),
            }
        }
        tally.progress("exported", Some(total));
    }
    out.flush().map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write the output: {e}")))?;
    if vanished > 0 {
        eprintln!("{vanished} listed keys were deleted meanwhile (not exported)");
    }
    let over = (tally.unfinished > 0).then(|| {
        let detail = format!(
            ": {} of {total} keys exported, {} failed, {} not read in time",
            tally.done, tally.failed, tally.unfinished
        );
        deadline.failure("export", &detail)
    });
    tally.summary("exported", over)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_bytes_round_trip_in_both_formats() {
        let samples: [&[u8]; 6] = [
            b"plain",
            b"tab\there",
            b"new\nline\r\n",
            b"back\\slash \\t",
            &[0, 1, 0x7f, 0xff, 0xc3],
            "h\u{e9}llo \u{1F600}".as_bytes(),
        ];
        for k in samples {
            for v in samples {
                for json in [false, true] {
                    let line = format_line(k, v, json);
                    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line: {line:?}");
                    let body = &line[..line.len() - 1];
                    assert_eq!(parse_line(body, json).unwrap(), (k.to_vec(), v.to_vec()), "{json} {line:?}");
                }
            }
        }
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        assert!(parse_line(b"no tab", false).unwrap_err().contains("TAB"));
        assert!(parse_line(b"k\t", false).unwrap_err().contains("empty value"));
        assert!(parse_line(b"k\\q\tv", false).unwrap_err().contains("unknown escape"));
        assert!(parse_line(b"k\tv\\x4", false).unwrap_err().contains("escape"));
        assert!(parse_line(b"{\"key\": \"k\"}", true).unwrap_err().contains("value"));
        assert!(parse_line(b"{\"key\": \"k\", \"value_hex\": \"zz\"}", true).unwrap_err().contains("hex"));
        assert!(parse_line(b"not json", true).unwrap_err().contains("JSON"));
    }
}
