//! Codec cross-check against the real py2p 0.5.607 (docs/PROTOCOL.md §4, §5).
//!
//! * `py2p_frames_decode_in_rs2p`: py2p builds random messages with its own
//!   `InternalMessage` and writes each one uncompressed and with every method
//!   (snappy, zlib, gzip, bz2, lzma); rs2p decodes every frame and must find the
//!   same type, sender, time, payload and id. rs2p's uncompressed encoding must
//!   also be byte-identical to py2p's.
//! * `rs2p_frames_decode_in_py2p`: rs2p builds random messages, encodes each
//!   uncompressed and with every method, and py2p's `feed_string` must decode
//!   them to the same fields without reporting a decompression failure. The
//!   uncompressed frames are also fed with py2p's full method list, so py2p's
//!   "every method fails, take the body raw" path is covered.
//!
//! The Python side is `tests/py2p/codec_crosscheck.py`, run in the venv that
//! `support::py2p_python` builds. `RS2P_CROSSCHECK_SEED=N` changes the seed of
//! both generators (the default is fixed, so runs are reproducible).

use rs2p_test_support as support;

use std::fmt::Write as _;

use bytes::Bytes;
use rs2p::wire::compression::PREFERENCE;
use rs2p::wire::{Compression, Message, DEFAULT_MAX_FRAME};
use serde_json::Value;

const SCRIPT: &str = "codec_crosscheck.py";
const CASES: usize = 60;
const DEFAULT_SEED: u64 = 20_240_607;
/// At most this many failures are printed in full (frames can be long).
const SHOWN_FAILURES: usize = 5;

fn seed() -> u64 {
    match std::env::var("RS2P_CROSSCHECK_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("RS2P_CROSSCHECK_SEED={s:?} is not a u64")),
        Err(_) => DEFAULT_SEED,
    }
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(s, "{b:02x}").expect("write to String");
    }
    s
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex from python: {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex {s:?}")))
        .collect()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("python record lacks string {key:?}: {v}"))
}

/// Reads the fields py2p reported (`msg_type`, `sender`, `time`, `payload`) as
/// a [`Message`], and its `id`.
fn message_from_record(v: &Value) -> (Message, String) {
    let msg_type = unhex(str_field(v, "msg_type"));
    assert_eq!(msg_type.len(), 1, "py2p msg_type is not one byte: {v}");
    let time = v["time"].as_u64().unwrap_or_else(|| panic!("python time is not a u64: {v}"));
    let payload = v["payload"]
        .as_array()
        .unwrap_or_else(|| panic!("python payload is not a list: {v}"))
        .iter()
        .map(|p| Bytes::from(unhex(p.as_str().expect("payload item is hex text"))))
        .collect();
    let msg = Message::new(msg_type[0], Bytes::from(unhex(str_field(v, "sender"))), time, payload);
    (msg, str_field(v, "id").to_owned())
}

fn parse_json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .expect("python stdout is UTF-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON from python ({e}): {l}")))
        .collect()
}

fn describe(m: &Message) -> String {
    format!(
        "type 0x{:02x}, sender {:?}, time {}, payload lengths {:?}",
        m.msg_type,
        m.sender_str(),
        m.time,
        m.payload.iter().map(|p| p.len()).collect::<Vec<_>>()
    )
}

fn method_name(m: Option<Compression>) -> &'static str {
    m.map_or("none", Compression::name)
}

fn finish(label: &str, checked: usize, failures: Vec<String>) {
    eprintln!("{label}: {checked} frames checked, {} failures", failures.len());
    assert!(checked > 0, "{label}: no frame was checked");
    if failures.is_empty() {
        return;
    }
    let mut report = format!(
        "{label}: {} of {checked} checks failed (seed {}); first {}:\n",
        failures.len(),
        seed(),
        failures.len().min(SHOWN_FAILURES)
    );
    for f in failures.iter().take(SHOWN_FAILURES) {
        report.push_str(f);
        report.push_str("\n\n");
    }
    panic!("{report}");
}

// ---------------------------------------------------------------------------
// py2p writes, rs2p reads
// ---------------------------------------------------------------------------

#[test]
fn py2p_frames_decode_in_rs2p() {
    let seed = seed().to_string();
    let n = CASES.to_string();
    let (status, stdout, stderr) = support::run_py(SCRIPT, &["make", &n, &seed], b"");
    assert!(status.success(), "py2p side failed: `{SCRIPT} make {n} {seed}` exited {status}; stderr:\n{stderr}");
    let records = parse_json_lines(&stdout);
    assert_eq!(records.len(), CASES, "py2p side: wrong number of messages; stderr:\n{stderr}");

    let names: Vec<(&str, Option<Compression>)> =
        std::iter::once(("none", None)).chain(PREFERENCE.iter().map(|&c| (c.name(), Some(c)))).collect();
    let mut checked = 0;
    let mut identical: Vec<(&str, usize)> = names.iter().map(|(n, _)| (*n, 0)).collect();
    let mut failures = Vec::new();

    for (i, rec) in records.iter().enumerate() {
        let (expected, py_id) = message_from_record(rec);
        let frames = rec["frames"].as_object().unwrap_or_else(|| panic!("py2p record {i} lacks frames: {rec}"));
        assert_eq!(frames.len(), names.len(), "py2p record {i}: frames {:?}", frames.keys());
        if expected.id() != py_id {
            failures.push(format!(
                "rs2p computes a different id than py2p for message {i} ({}): rs2p {}, py2p {py_id}",
                describe(&expected),
                expected.id()
            ));
        }
        for (k, (name, method)) in names.iter().enumerate() {
            let frame = unhex(
                frames
                    .get(*name)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("py2p record {i} lacks frame {name:?}")),
            );
            checked += 1;
            match Message::decode_frame(&frame, &PREFERENCE, DEFAULT_MAX_FRAME) {
                Ok(got) if got == expected && got.id() == py_id => {}
                Ok(got) => failures.push(format!(
                    "rs2p decoded py2p's {name} frame of message {i} wrongly:\n  \
                     py2p: {} id {py_id}\n  rs2p: {} id {}\n  frame: {}",
                    describe(&expected),
                    describe(&got),
                    got.id(),
                    hex(&frame)
                )),
                Err(e) => failures.push(format!(
                    "rs2p failed to decode py2p's {name} frame of message {i} ({}): {e}\n  frame: {}",
                    describe(&expected),
                    hex(&frame)
                )),
            }
            // Byte equality: required uncompressed, informational otherwise (§5.1).
            match expected.encode(*method) {
                Ok(ours) if ours[..] == frame[..] => identical[k].1 += 1,
                Ok(ours) if method.is_none() => failures.push(format!(
                    "rs2p's uncompressed frame of message {i} differs from py2p's:\n  \
                     py2p: {}\n  rs2p: {}",
                    hex(&frame),
                    hex(&ours)
                )),
                Ok(_) => {}
                Err(e) => failures
                    .push(format!("rs2p failed to encode message {i} ({}) with {name}: {e}", describe(&expected))),
            }
        }
    }
    eprintln!("byte-identical to py2p (of {CASES} each): {identical:?}");
    finish("py2p -> rs2p", checked, failures);
}

// ---------------------------------------------------------------------------
// rs2p writes, py2p reads
// ---------------------------------------------------------------------------

/// splitmix64: small, deterministic, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (tiny modulo bias is irrelevant here).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn random_sender(rng: &mut Rng) -> Bytes {
    let roll = rng.range(0, 99);
    let len = if roll < 80 {
        rng.range(64, 66) as usize // the length of a 384-bit id
    } else if roll < 90 {
        0
    } else {
        rng.range(1, 100) as usize
    };
    let mut s: Vec<u8> = (0..len).map(|_| B58[rng.range(0, B58.len() as u64 - 1) as usize]).collect();
    if roll >= 95 && !s.is_empty() {
        // py2p keeps the sender as raw bytes; make sure any byte survives.
        let at = rng.range(0, s.len() as u64 - 1) as usize;
        s[at] = rng.range(0x80, 0xff) as u8;
    }
    Bytes::from(s)
}

fn random_time(rng: &mut Rng) -> u64 {
    const SPECIAL: [u64; 12] =
        [0, 1, 57, 58, 3363, 3364, 1_700_000_000, u32::MAX as u64, 1 << 32, (1 << 53) + 1, 1 << 63, u64::MAX];
    if rng.chance(30) {
        SPECIAL[rng.range(0, SPECIAL.len() as u64 - 1) as usize]
    } else {
        rng.range(1, 1 << 34)
    }
}

fn random_packet(rng: &mut Rng) -> Bytes {
    let roll = rng.range(0, 99);
    if roll < 10 {
        return Bytes::new();
    }
    if roll < 25 {
        return Bytes::from(vec![rng.range(0, 0x2f) as u8]);
    }
    let len = rng.range(0, 3000) as usize;
    if roll < 60 {
        let unit_len = rng.range(1, 16) as usize;
        let unit = rng.bytes(unit_len);
        return Bytes::from(unit.iter().copied().cycle().take(len).collect::<Vec<_>>());
    }
    if roll < 80 {
        let chars = ['a', 'b', 'c', ' ', 'é', '中'];
        let s: String = (0..len / 3).map(|_| chars[rng.range(0, chars.len() as u64 - 1) as usize]).collect();
        return Bytes::from(s);
    }
    Bytes::from(rng.bytes(len))
}

fn random_message(rng: &mut Rng) -> Message {
    let msg_type = [0x00, 0x01, 0x02][rng.range(0, 2) as usize];
    let sender = random_sender(rng);
    let time = random_time(rng);
    let payload = (0..rng.range(1, 6)).map(|_| random_packet(rng)).collect();
    Message::new(msg_type, sender, time, payload)
}

struct Case {
    msg_index: usize,
    method: Option<Compression>,
    /// The flags py2p is told the peer may have used.
    methods: Vec<Compression>,
    frame: Bytes,
}

#[test]
fn rs2p_frames_decode_in_py2p() {
    let mut rng = Rng(seed() ^ 0x7273_3270_7273_3270);
    let messages: Vec<Message> = (0..CASES).map(|_| random_message(&mut rng)).collect();

    let mut cases = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let encode = |method: Option<Compression>| {
            m.encode(method).unwrap_or_else(|e| {
                panic!("rs2p side failed to encode message {i} ({}) with {}: {e}", describe(m), method_name(method))
            })
        };
        // Uncompressed: as py2p sees it before the handshake (no methods) and
        // after (every method fails, so the body is taken raw).
        let raw = encode(None);
        for methods in [Vec::new(), PREFERENCE.to_vec()] {
            cases.push(Case { msg_index: i, method: None, methods, frame: raw.clone() });
        }
        for c in PREFERENCE {
            cases.push(Case { msg_index: i, method: Some(c), methods: vec![c], frame: encode(Some(c)) });
        }
    }

    let mut input = String::new();
    for c in &cases {
        let methods: Vec<String> = c.methods.iter().map(|m| hex(&[m.flag()])).collect();
        let line = serde_json::json!({ "frame": hex(&c.frame), "methods": methods });
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let (status, stdout, stderr) = support::run_py(SCRIPT, &["check"], input.as_bytes());
    assert!(status.success(), "py2p side failed: `{SCRIPT} check` exited {status}; stderr:\n{stderr}");
    let answers = parse_json_lines(&stdout);
    assert_eq!(
        answers.len(),
        cases.len(),
        "py2p side answered {} of {} frames; stderr:\n{stderr}",
        answers.len(),
        cases.len()
    );

    let mut failures = Vec::new();
    for (c, ans) in cases.iter().zip(&answers) {
        let m = &messages[c.msg_index];
        let label = format!(
            "rs2p's {} frame of message {} (py2p told methods {:?})",
            method_name(c.method),
            c.msg_index,
            c.methods.iter().map(|x| x.name()).collect::<Vec<_>>()
        );
        if let Some(err) = ans.get("error") {
            failures.push(format!(
                "py2p failed to decode {label}: {err}\n  message: {}\n  frame: {}",
                describe(m),
                hex(&c.frame)
            ));
            continue;
        }
        let (got, py_id) = message_from_record(ans);
        let compression_fail = ans["compression_fail"].as_bool();
        // py2p reports a failed decompression when it had to fall back to raw.
        let expect_fail = c.method.is_none() && !c.methods.is_empty();
        if got != *m || py_id != m.id() || compression_fail != Some(expect_fail) {
            failures.push(format!(
                "py2p decoded {label} wrongly:\n  rs2p: {} id {}\n  py2p: {} id {py_id}, \
                 compression_fail {compression_fail:?} (expected {expect_fail})\n  frame: {}",
                describe(m),
                m.id(),
                describe(&got),
                hex(&c.frame)
            ));
        }
    }
    finish("rs2p -> py2p", cases.len(), failures);
}
