//! Feeds arbitrary bytes to every decoding entry point of the wire codec.
//!
//! Nothing may panic, hang or allocate without bound (libFuzzer's `-rss_limit_mb`
//! and `-timeout` catch the last two).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rs2p::wire::compression::PREFERENCE;
use rs2p::wire::{base58, FrameDecoder, Message};

/// A small frame limit keeps decompression bombs cheap while still letting
/// every method decode real content.
const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // Stream: two chunks, split where the first byte says.
    let split = data.first().map_or(0, |&b| usize::from(b).min(data.len()));
    let (a, b) = data.split_at(split);
    let mut decoder = FrameDecoder::new(MAX);
    'feed: for chunk in [a, b] {
        decoder.extend(chunk);
        loop {
            match decoder.next_body() {
                Ok(Some(body)) => {
                    assert!(body.len() <= MAX);
                    let _ = Message::decode_body(&body, &PREFERENCE, MAX);
                    for method in PREFERENCE {
                        let _ = Message::decode_body(&body, &[method], MAX);
                        if let Ok(plain) = method.decompress(&body, MAX) {
                            assert!(plain.len() <= MAX);
                        }
                    }
                }
                Ok(None) => break,
                // The stream cannot be resynchronised after an oversize header.
                Err(_) => break 'feed,
            }
        }
    }

    // The raw input as a whole frame, a body and a packet list.
    let _ = Message::decode_frame(data, &PREFERENCE, MAX);
    let _ = Message::decode_body(data, &PREFERENCE, MAX);
    let _ = Message::decode_body(data, &[], MAX);
    if let Ok(m) = Message::from_packets(data) {
        // Whatever decodes re-encodes to something that decodes to the same message.
        let again = m.encode(None).expect("decoded message re-encodes");
        assert_eq!(
            Message::decode_frame(&again, &[], usize::MAX).as_ref(),
            Ok(&m)
        );
    }

    // base58 of the raw input: decode, and a decoded value re-encodes canonically.
    if let Ok(v) = base58::decode(data) {
        let text = base58::encode(&v);
        assert_eq!(base58::decode(text.as_bytes()), Ok(v));
    }
    let _ = base58::decode_u64(data);
});
