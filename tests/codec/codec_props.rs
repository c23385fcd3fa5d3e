//! Property tests of the wire codec (docs/PROTOCOL.md §1, §4, §5) and ring arithmetic.
//!
//! Case counts are chosen so the whole file runs in a few seconds in debug;
//! set `PROPTEST_CASES=N` to run every property with N cases instead.
//! Failure persistence is off (no regression files are written): a failing
//! case is printed, shrunk, by proptest.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use rs2p::ring::{distance, get_hashes, U512};
use rs2p::wire::compression::PREFERENCE;
use rs2p::wire::{base58, Compression, DecodeError, FrameDecoder, Message, DEFAULT_MAX_FRAME};

// ---------------------------------------------------------------------------
// Configuration and strategies
// ---------------------------------------------------------------------------

/// A config with `cases` cases (or `PROPTEST_CASES` when set) and no regression files.
fn cfg(cases: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() { base.cases } else { cases },
        failure_persistence: None,
        ..base
    }
}

/// A message with up to `max_packets` payload packets of up to `max_len` bytes each.
fn message_with(max_packets: usize, max_len: usize) -> impl Strategy<Value = Message> {
    (
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..80),
        any::<u64>(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..max_len), 0..max_packets),
    )
        .prop_map(|(msg_type, sender, time, payload)| {
            Message::new(msg_type, sender, time, payload.into_iter().map(Bytes::from).collect())
        })
}

/// The full-size message of the brief: 0..8 packets of 0..2000 arbitrary bytes.
fn arb_message() -> impl Strategy<Value = Message> {
    message_with(8, 2000)
}

/// No compression or any one of the five methods.
fn arb_compression() -> impl Strategy<Value = Option<Compression>> {
    prop_oneof![
        1 => Just(None),
        5 => prop::sample::select(PREFERENCE.to_vec()).prop_map(Some),
    ]
}

/// All five methods in an arbitrary order (the peer's advertised order).
fn all_methods_shuffled() -> impl Strategy<Value = Vec<Compression>> {
    Just(PREFERENCE.to_vec()).prop_shuffle()
}

/// The methods a receiver is told the peer uses for frames encoded with `c`.
fn methods_for(c: Option<Compression>) -> Vec<Compression> {
    c.into_iter().collect()
}

/// A U512 of any magnitude: random limbs with the top `8 - keep` limbs cleared.
fn arb_u512() -> impl Strategy<Value = U512> {
    (any::<[u64; 8]>(), 0usize..=8).prop_map(|(mut limbs, keep)| {
        for limb in limbs.iter_mut().skip(keep) {
            *limb = 0;
        }
        U512::from_limbs(limbs)
    })
}

/// `u32be(len) ‖ body`.
fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// `u32be(len(p)) ‖ p` for each packet.
fn packet_list(packets: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Takes every whole body out of the decoder until it has none or fails.
fn drain(d: &mut FrameDecoder, out: &mut Vec<Bytes>) -> Result<(), DecodeError> {
    while let Some(body) = d.next_body()? {
        out.push(body);
    }
    Ok(())
}

/// Turns arbitrary indices into sorted, distinct cut points strictly inside `0..len`.
fn cut_points(cuts: &[Index], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = if len == 0 { Vec::new() } else { cuts.iter().map(|i| i.index(len)).collect() };
    points.sort_unstable();
    points.dedup();
    points.retain(|&p| p > 0);
    points
}

/// Splits `data` at the given (sorted) points.
fn chunks<'a>(data: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for &p in points {
        out.push(&data[start..p]);
        start = p;
    }
    out.push(&data[start..]);
    out
}

/// Offset of the id packet's bytes inside an *uncompressed* packet list.
fn id_offset(m: &Message) -> usize {
    4 + 1 + 4 + m.sender.len() + 4
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

fn check_round_trip(m: &Message, c: Option<Compression>, all: &[Compression]) -> Result<(), TestCaseError> {
    let frame = m.encode(c).expect("small messages always encode");
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    prop_assert_eq!(len, frame.len() - 4, "length header");
    if c.is_none() {
        prop_assert_eq!(&frame[4..], &m.packets().unwrap()[..]);
        prop_assert_eq!(Message::from_packets(&frame[4..]), Ok(m.clone()));
    }
    let own = methods_for(c);
    prop_assert_eq!(Message::decode_frame(&frame, &own, DEFAULT_MAX_FRAME), Ok(m.clone()), "peer_methods = {:?}", own);
    prop_assert_eq!(Message::decode_frame(&frame, all, DEFAULT_MAX_FRAME), Ok(m.clone()), "peer_methods = {:?}", all);
    prop_assert_eq!(Message::decode_body(&frame[4..], all, DEFAULT_MAX_FRAME), Ok(m.clone()));
    Ok(())
}

proptest! {
    #![proptest_config(cfg(160))]

    #[test]
    fn round_trip_uncompressed(m in arb_message(), all in all_methods_shuffled()) {
        check_round_trip(&m, None, &all)?;
    }

    #[test]
    fn round_trip_snappy(m in arb_message(), all in all_methods_shuffled()) {
        check_round_trip(&m, Some(Compression::Snappy), &all)?;
    }

    #[test]
    fn round_trip_zlib(m in arb_message(), all in all_methods_shuffled()) {
        check_round_trip(&m, Some(Compression::Zlib), &all)?;
    }

    #[test]
    fn round_trip_gzip(m in arb_message(), all in all_methods_shuffled()) {
        check_round_trip(&m, Some(Compression::Gzip), &all)?;
    }
}

proptest! {
    // bz2 (block size 9) and xz (preset 6) set up large encoder state per call,
    // which is slow in debug builds: fewer cases.
    #![proptest_config(cfg(48))]

    #[test]
    fn round_trip_bz2(m in arb_message(), all in all_methods_shuffled()) {
        check_round_trip(&m, Some(Compression::Bz2), &all)?;
    }

    #[test]
    fn round_trip_lzma(m in arb_message(), all in all_methods_shuffled()) {
        check_round_trip(&m, Some(Compression::Lzma), &all)?;
    }
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Compressible payloads (runs of one byte) exercise the back-references
    /// that random bytes never produce.
    #[test]
    fn round_trip_compressible(
        msg_type in any::<u8>(),
        time in any::<u64>(),
        runs in prop::collection::vec((any::<u8>(), 0usize..3000), 0..6),
        c in prop::sample::select(vec![Compression::Snappy, Compression::Zlib, Compression::Gzip]),
        all in all_methods_shuffled(),
    ) {
        let payload = runs.into_iter().map(|(b, n)| Bytes::from(vec![b; n])).collect();
        let m = Message::new(msg_type, "sender", time, payload);
        check_round_trip(&m, Some(c), &all)?;
    }

    /// A time written with leading '1's but the canonical id is accepted, as
    /// py2p accepts it (it hashes the re-encoded time, §4.5).
    #[test]
    fn non_canonical_time_with_canonical_id_is_accepted(
        m in message_with(4, 64),
        ones in 1usize..4,
    ) {
        let id = m.id();
        let mut time = "1".repeat(ones);
        time.push_str(&base58::encode_u64(m.time));
        let msg_type = [m.msg_type];
        let mut header: Vec<&[u8]> = vec![&msg_type, &m.sender, id.as_bytes(), time.as_bytes()];
        header.extend(m.payload.iter().map(|p| p.as_ref()));
        let body = packet_list(&header);
        prop_assert_eq!(Message::from_packets(&body), Ok(m.clone()));
        prop_assert_eq!(Message::decode_frame(&frame_of(&body), &[], DEFAULT_MAX_FRAME), Ok(m));
    }
}

// ---------------------------------------------------------------------------
// Streams: FrameDecoder under arbitrary splits
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn frame_decoder_is_split_invariant(
        msgs in prop::collection::vec((message_with(5, 300), arb_compression()), 1..6),
        cuts in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let mut stream = Vec::new();
        let mut frames = Vec::new();
        for (m, c) in &msgs {
            let f = m.encode(*c).unwrap();
            stream.extend_from_slice(&f);
            frames.push(f);
        }
        let points = cut_points(&cuts, stream.len());
        let mut d = FrameDecoder::default();
        let mut bodies = Vec::new();
        for chunk in chunks(&stream, &points) {
            d.extend(chunk);
            drain(&mut d, &mut bodies).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(d.pending(), 0);
        prop_assert_eq!(d.next_body(), Ok(None));
        prop_assert_eq!(bodies.len(), msgs.len());
        for ((body, frame), (m, c)) in bodies.iter().zip(&frames).zip(&msgs) {
            prop_assert_eq!(&body[..], &frame[4..]);
            prop_assert_eq!(
                Message::decode_body(body, &methods_for(*c), DEFAULT_MAX_FRAME),
                Ok(m.clone())
            );
        }
    }
}

#[test]
fn frame_decoder_one_byte_at_a_time() {
    let msgs: Vec<(Message, Option<Compression>)> = [None]
        .into_iter()
        .chain(PREFERENCE.map(Some))
        .enumerate()
        .map(|(i, c)| {
            let payload = vec![Bytes::from_static(b"\x02"), Bytes::from(vec![i as u8; i * 50])];
            (Message::new(2, "me", 1_700_000_000 + i as u64, payload), c)
        })
        .collect();
    let stream: Vec<u8> = msgs.iter().flat_map(|(m, c)| m.encode(*c).unwrap().to_vec()).collect();
    let mut d = FrameDecoder::default();
    let mut bodies = Vec::new();
    for b in &stream {
        d.extend(std::slice::from_ref(b));
        drain(&mut d, &mut bodies).unwrap();
    }
    assert_eq!(d.pending(), 0);
    let decoded: Vec<Message> =
        bodies.iter().map(|b| Message::decode_body(b, &PREFERENCE, DEFAULT_MAX_FRAME).unwrap()).collect();
    let expected: Vec<Message> = msgs.into_iter().map(|(m, _)| m).collect();
    assert_eq!(decoded, expected);
}

// ---------------------------------------------------------------------------
// No panics on hostile input
// ---------------------------------------------------------------------------

/// Stream segments `u32be(len) ‖ bytes` where `bytes` need not be `len` long,
/// with lengths mostly small enough to pass a small frame limit.
fn hostile_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (prop_oneof![3 => 0u32..200, 1 => any::<u32>()], prop::collection::vec(any::<u8>(), 0..250)),
        0..6,
    )
    .prop_map(|segments| {
        let mut out = Vec::new();
        for (len, bytes) in segments {
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    })
}

/// Packet lists with arbitrary packets (a base58-looking time sometimes),
/// optionally followed by garbage.
fn hostile_packets() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8),
        prop::option::of("[1-9A-HJ-NP-Za-km-z]{0,14}"),
        prop::collection::vec(any::<u8>(), 0..6),
    )
        .prop_map(|(mut packets, time, tail)| {
            if let Some(t) = time {
                if packets.len() > 3 {
                    packets[3] = t.into_bytes();
                }
            }
            let refs: Vec<&[u8]> = packets.iter().map(|p| p.as_slice()).collect();
            let mut out = packet_list(&refs);
            out.extend_from_slice(&tail);
            out
        })
}

/// A valid frame (any method) with a few bytes overwritten.
fn mutated_frame() -> impl Strategy<Value = (Vec<u8>, Option<Compression>)> {
    (
        message_with(4, 200),
        prop::sample::select(vec![None, Some(Compression::Snappy), Some(Compression::Zlib), Some(Compression::Gzip)]),
        prop::collection::vec((any::<Index>(), any::<u8>()), 1..5),
    )
        .prop_map(|(m, c, edits)| {
            let mut f = m.encode(c).unwrap().to_vec();
            for (i, b) in edits {
                // Keep the length header intact so the body is actually decoded.
                let at = 4 + i.index(f.len() - 4);
                f[at] = b;
            }
            (f, c)
        })
}

proptest! {
    #![proptest_config(cfg(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..600),
        all in all_methods_shuffled(),
    ) {
        let _ = Message::decode_frame(&data, &all, DEFAULT_MAX_FRAME);
        let _ = Message::decode_frame(&frame_of(&data), &all, DEFAULT_MAX_FRAME);
        let _ = Message::decode_body(&data, &all, DEFAULT_MAX_FRAME);
        let _ = Message::decode_body(&data, &[], DEFAULT_MAX_FRAME);
        let _ = Message::decode_body(&data, &all, 16);
        let _ = Message::from_packets(&data);
    }

    #[test]
    fn hostile_packet_lists_never_panic(
        body in hostile_packets(),
        all in all_methods_shuffled(),
    ) {
        let _ = Message::from_packets(&body);
        let _ = Message::decode_body(&body, &all, DEFAULT_MAX_FRAME);
        let _ = Message::decode_frame(&frame_of(&body), &all, DEFAULT_MAX_FRAME);
    }

    #[test]
    fn mutated_frames_never_panic(
        (frame, c) in mutated_frame(),
        all in all_methods_shuffled(),
    ) {
        let _ = Message::decode_frame(&frame, &methods_for(c), DEFAULT_MAX_FRAME);
        let _ = Message::decode_frame(&frame, &all, DEFAULT_MAX_FRAME);
        let _ = Message::decode_frame(&frame, &all, 64);
    }

    #[test]
    fn frame_decoder_never_panics(
        stream in prop_oneof![hostile_stream(), prop::collection::vec(any::<u8>(), 0..600)],
        cuts in prop::collection::vec(any::<Index>(), 0..10),
        max in prop_oneof![Just(DEFAULT_MAX_FRAME), 0usize..300],
        all in all_methods_shuffled(),
    ) {
        let points = cut_points(&cuts, stream.len());
        let mut d = FrameDecoder::new(max);
        let mut bodies = Vec::new();
        let mut consumed = 0;
        for chunk in chunks(&stream, &points) {
            d.extend(chunk);
            consumed += chunk.len();
            match drain(&mut d, &mut bodies) {
                Ok(()) => {
                    prop_assert!(d.pending() <= consumed);
                }
                Err(e) => {
                    prop_assert!(
                        matches!(e, DecodeError::FrameTooLarge { .. }),
                        "only an oversize header stops the decoder, got {e:?}"
                    );
                    break;
                }
            }
        }
        for b in &bodies {
            prop_assert!(b.len() <= max);
            let _ = Message::decode_body(b, &all, max.max(1));
        }
    }
}

// ---------------------------------------------------------------------------
// Base58 (§1)
// ---------------------------------------------------------------------------

const ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

proptest! {
    #![proptest_config(cfg(2048))]

    #[test]
    fn base58_round_trips(x in arb_u512(), ones in 0usize..5) {
        let text = base58::encode(&x);
        prop_assert!(text.bytes().all(|b| ALPHABET.as_bytes().contains(&b)));
        if x.is_zero() {
            prop_assert_eq!(text.as_str(), "1");
        } else {
            prop_assert!(!text.starts_with('1'), "canonical form has no leading 1: {}", text);
        }
        prop_assert_eq!(base58::decode(text.as_bytes()), Ok(x));
        let padded = format!("{}{}", "1".repeat(ones), text);
        prop_assert_eq!(base58::decode(padded.as_bytes()), Ok(x));
    }

    #[test]
    fn base58_u64_agrees_with_u512(n in any::<u64>(), ones in 0usize..3) {
        let text = base58::encode_u64(n);
        prop_assert_eq!(&text, &base58::encode(&U512::from(n)));
        prop_assert_eq!(base58::decode_u64(text.as_bytes()), Ok(n));
        let padded = format!("{}{}", "1".repeat(ones), text);
        prop_assert_eq!(base58::decode_u64(padded.as_bytes()), Ok(n));
        prop_assert_eq!(base58::decode(padded.as_bytes()), Ok(U512::from(n)));
    }

    /// Any digit string that fits decodes and re-encodes to itself minus leading '1's.
    #[test]
    fn base58_digit_strings_are_canonicalised(text in "[1-9A-HJ-NP-Za-km-z]{0,100}") {
        let canonical = match text.trim_start_matches('1') {
            "" => "1",
            t => t,
        };
        match base58::decode(text.as_bytes()) {
            Ok(v) => prop_assert_eq!(base58::encode(&v), canonical),
            Err(e) => prop_assert!(
                matches!(e, base58::Base58Error::Overflow { .. }),
                "only overflow can fail: {:?}", e
            ),
        }
        if let Ok(n) = base58::decode_u64(text.as_bytes()) {
            prop_assert_eq!(base58::encode_u64(n), canonical);
        }
    }

    #[test]
    fn base58_decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let ok = data.iter().all(|b| ALPHABET.as_bytes().contains(b));
        let r = base58::decode(&data);
        if !ok {
            prop_assert!(
                matches!(r, Err(base58::Base58Error::InvalidCharacter { .. })),
                "{:?}", r
            );
        }
        let _ = base58::decode_u64(&data);
    }
}

// ---------------------------------------------------------------------------
// Ring arithmetic
// ---------------------------------------------------------------------------

/// 2^384 − 1: the mask of the ring.
fn ring_mask() -> U512 {
    (U512::from(1u64) << 384) - U512::from(1u64)
}

proptest! {
    #![proptest_config(cfg(2048))]

    #[test]
    fn distance_is_antisymmetric_mod_ring(a in arb_u512(), b in arb_u512(), c in arb_u512()) {
        let mask = ring_mask();
        let ab = distance(&a, &b);
        let ba = distance(&b, &a);
        prop_assert!(ab <= mask && ba <= mask, "distances are reduced");
        prop_assert_eq!(ab.wrapping_add(ba) & mask, U512::ZERO);
        prop_assert_eq!(distance(&a, &a), U512::ZERO);
        prop_assert_eq!(ab, b.wrapping_sub(a) & mask);
        // Going a→b→c is going a→c.
        prop_assert_eq!(ab.wrapping_add(distance(&b, &c)) & mask, distance(&a, &c));
    }
}

proptest! {
    #![proptest_config(cfg(64))]

    #[test]
    fn key_hashes_have_their_shapes(key in prop::collection::vec(any::<u8>(), 0..100)) {
        let h = get_hashes(&key);
        prop_assert_eq!(h, get_hashes(&key));
        for (hash, low_zero_bits) in h[..4].iter().zip([224usize, 160, 128, 0]) {
            prop_assert!(hash.bit_len() <= 384);
            if low_zero_bits > 0 {
                let low = *hash & ((U512::from(1u64) << low_zero_bits) - U512::from(1u64));
                prop_assert_eq!(low, U512::ZERO);
            }
        }
        prop_assert!(h[4].bit_len() <= 512);
    }
}

// ---------------------------------------------------------------------------
// Oversize, truncated and corrupted frames
// ---------------------------------------------------------------------------

#[test]
fn oversize_header_is_refused_promptly() {
    let header = u32::MAX.to_be_bytes();
    let mut frame = header.to_vec();
    frame.extend_from_slice(b"\x00\x00\x00\x01\x02");

    let start = Instant::now();
    let expected = DecodeError::FrameTooLarge { len: u64::from(u32::MAX), max: DEFAULT_MAX_FRAME };
    assert_eq!(Message::decode_frame(&frame, &PREFERENCE, DEFAULT_MAX_FRAME), Err(expected.clone()));
    assert_eq!(Message::decode_frame(&header, &[], DEFAULT_MAX_FRAME), Err(expected.clone()));

    // Header fed whole.
    let mut d = FrameDecoder::default();
    assert_eq!(d.max_frame(), DEFAULT_MAX_FRAME);
    d.extend(&frame);
    assert_eq!(d.next_body(), Err(expected.clone()));
    assert!(d.pending() <= frame.len(), "nothing reserved for the claim");

    // Header fed one byte at a time: undecided until the 4th byte.
    let mut d = FrameDecoder::default();
    for b in &header[..3] {
        d.extend(std::slice::from_ref(b));
        assert_eq!(d.next_body(), Ok(None));
    }
    d.extend(&header[3..]);
    assert_eq!(d.next_body(), Err(expected));
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}

#[test]
fn frame_limit_boundary() {
    let m = Message::new(2, "me", 1_700_000_000, vec!["\x02".into(), "hello".into()]);
    let frame = m.encode(None).unwrap();
    let body_len = frame.len() - 4;
    assert_eq!(Message::decode_frame(&frame, &[], body_len), Ok(m.clone()));
    assert_eq!(
        Message::decode_frame(&frame, &[], body_len - 1),
        Err(DecodeError::FrameTooLarge { len: body_len as u64, max: body_len - 1 })
    );
    let mut d = FrameDecoder::new(body_len);
    d.extend(&frame);
    assert_eq!(d.next_body().unwrap().as_deref(), Some(&frame[4..]));
    let mut d = FrameDecoder::new(body_len - 1);
    d.extend(&frame);
    assert!(matches!(d.next_body(), Err(DecodeError::FrameTooLarge { .. })));
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn oversize_claims_are_refused(len in any::<u32>(), max in 0usize..(1 << 20), tail in prop::collection::vec(any::<u8>(), 0..16)) {
        prop_assume!(len as usize > max);
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(&tail);
        let expected = DecodeError::FrameTooLarge { len: u64::from(len), max };
        prop_assert_eq!(Message::decode_frame(&frame, &PREFERENCE, max), Err(expected.clone()));
        let mut d = FrameDecoder::new(max);
        d.extend(&frame);
        prop_assert_eq!(d.next_body(), Err(expected));
    }

    #[test]
    fn truncated_frames_are_errors_and_pending(
        m in message_with(4, 300),
        c in arb_compression(),
        cut in any::<Index>(),
        all in all_methods_shuffled(),
    ) {
        let frame = m.encode(c).unwrap();
        let k = cut.index(frame.len()); // 0..len: always a proper prefix
        let prefix = &frame[..k];
        let r = Message::decode_frame(prefix, &all, DEFAULT_MAX_FRAME);
        prop_assert!(matches!(r, Err(DecodeError::Truncated { .. })), "prefix {} of {}: {:?}", k, frame.len(), r);
        let r = Message::decode_frame(prefix, &methods_for(c), DEFAULT_MAX_FRAME);
        prop_assert!(r.is_err());

        let mut d = FrameDecoder::default();
        d.extend(prefix);
        prop_assert_eq!(d.next_body(), Ok(None));
        prop_assert_eq!(d.pending(), k);
        d.extend(&frame[k..]);
        let body = d.next_body().unwrap();
        prop_assert_eq!(body.as_deref(), Some(&frame[4..]));
        prop_assert_eq!(d.pending(), 0);
    }

    /// A frame with trailing bytes after its body is not one whole frame.
    #[test]
    fn trailing_bytes_are_refused(
        m in message_with(3, 100),
        extra in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        let mut frame = m.encode(None).unwrap().to_vec();
        frame.extend_from_slice(&extra);
        prop_assert!(Message::decode_frame(&frame, &[], DEFAULT_MAX_FRAME).is_err());
    }

    #[test]
    fn corrupted_id_is_a_mismatch(
        m in message_with(5, 300),
        at in any::<Index>(),
        xor in 1u8..=255,
        c in arb_compression(),
        all in all_methods_shuffled(),
    ) {
        let id_len = m.id().len();
        let mut body = m.packets().unwrap().to_vec();
        let pos = id_offset(&m) + at.index(id_len);
        body[pos] ^= xor;
        let body = match c {
            None => body,
            Some(method) => method.compress(&body),
        };
        let frame = frame_of(&body);
        for methods in [methods_for(c), all] {
            let r = Message::decode_frame(&frame, &methods, DEFAULT_MAX_FRAME);
            prop_assert!(
                matches!(r, Err(DecodeError::IdMismatch { .. })),
                "{:?} with {:?}: {:?}", c, methods, r
            );
        }
        if c.is_none() {
            let r = Message::from_packets(&body);
            prop_assert!(matches!(r, Err(DecodeError::IdMismatch { .. })), "{:?}", r);
        }
    }

    /// Changing the payload or the time (but not the id) is also a mismatch;
    /// changing msg_type or sender is not (they are not covered by the id, §4.3).
    #[test]
    fn id_covers_payload_and_time_only(
        m in message_with(4, 100),
        other_time in any::<u64>(),
        other_type in any::<u8>(),
        extra in prop::collection::vec(any::<u8>(), 1..10),
    ) {
        let id = m.id();
        let time = base58::encode_u64(m.time);
        let rebuild = |msg_type: u8, sender: &[u8], time: &[u8], payload: &[Bytes]| {
            let mut packets: Vec<&[u8]> = vec![std::slice::from_ref(&msg_type), sender, id.as_bytes(), time];
            packets.extend(payload.iter().map(|p| p.as_ref()));
            packet_list(&packets)
        };
        // Type and sender swapped: still decodes.
        let body = rebuild(other_type, b"someone else", time.as_bytes(), &m.payload);
        let r = Message::from_packets(&body);
        prop_assert_eq!(
            r,
            Ok(Message::new(other_type, "someone else", m.time, m.payload.clone()))
        );
        // Another time.
        if other_time != m.time {
            let t = base58::encode_u64(other_time);
            let body = rebuild(m.msg_type, &m.sender, t.as_bytes(), &m.payload);
            let r = Message::from_packets(&body);
            prop_assert!(matches!(r, Err(DecodeError::IdMismatch { .. })), "{:?}", r);
        }
        // An extra payload packet.
        let mut payload = m.payload.clone();
        payload.push(Bytes::from(extra));
        let body = rebuild(m.msg_type, &m.sender, time.as_bytes(), &payload);
        let r = Message::from_packets(&body);
        prop_assert!(matches!(r, Err(DecodeError::IdMismatch { .. })), "{:?}", r);
    }
}

/// Peak virtual memory of this process in KiB (Linux).
#[cfg(target_os = "linux")]
fn vm_peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmPeak line")
}

/// A 14-byte body with a legacy `.lzma` header claiming a 4 GiB − 1 dictionary
/// must not make the decoder reserve that dictionary.
///
/// Without a memory limit liblzma would malloc 4 GiB here (VmPeak jumps by
/// ~4 GiB; under `ulimit -v` the decode fails with "can't allocate memory").
#[cfg(target_os = "linux")]
#[test]
fn lzma_legacy_header_does_not_reserve_its_dictionary() {
    let mut body = vec![0x5d, 0xff, 0xff, 0xff, 0xff];
    body.extend_from_slice(&[0xff; 8]);
    body.push(0x00);
    let before = vm_peak_kib();
    assert!(Compression::Lzma.decompress(&body, 1 << 20).is_err());
    assert!(Message::decode_frame(&frame_of(&body), &PREFERENCE, 1 << 20).is_err());
    let grown = vm_peak_kib().saturating_sub(before);
    assert!(grown < 1 << 20, "decoding a 14-byte body reserved {grown} KiB of address space");
}
