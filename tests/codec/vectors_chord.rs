//! The chord vectors of `ring.json` (`ownership`, `dump_data`), run through a
//! real `Node`: peers are fed to it as handshake and meta frames.
//!
//! `ring.json` is read from this repository's `tests/vectors/` only (schema and
//! provenance in `tests/vectors/README.md`; regenerate or check it with
//! `scripts/gen_vectors.py`). The ownership rules it exercises are in
//! `docs/PROTOCOL.md` (the chord ring: distance, ownership, join and handoff).

use std::str::FromStr;

use bytes::Bytes;
use rs2p::chord::Owner;
use rs2p::core::{Config, ConnId};
use rs2p::node::Node;
use rs2p::ring::{HashMethod, U512};
use rs2p::wire::{base58, flags, Message, Protocol};
use serde_json::Value;

const NOW: u64 = 1_700_000_000_000;

/// The fixtures directory inside this repository.
const VECTORS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

fn ring_json() -> Value {
    let path = format!("{VECTORS_DIR}/ring.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("golden vectors not found at {path}: {e}"));
    serde_json::from_str(&text).expect("ring.json is JSON")
}

fn frame(sender: &str, payload: Vec<Bytes>) -> Bytes {
    Message::new(flags::WHISPER, sender.to_owned(), NOW / 1000, payload).encode(None).unwrap()
}

/// Connects a fake peer with `id` to the node; it seeds unless `leeching`.
fn add_peer(node: &mut Node, id: &str, leeching: bool) -> ConnId {
    let conn = node.on_accepted(NOW);
    let hs = vec![
        Bytes::from_static(&[flags::HANDSHAKE]),
        Bytes::from(id.to_owned()),
        Bytes::from(Protocol::chord_default().id()),
        Bytes::from_static(b"[\"10.9.9.9\", 1]"),
        Bytes::from_static(b"[]"),
    ];
    node.on_data(conn, &frame(id, hs), NOW);
    if !leeching {
        let meta = vec![Bytes::from_static(&[flags::HANDSHAKE]), Bytes::from_static(b"0")];
        node.on_data(conn, &frame(id, meta), NOW);
    }
    assert_eq!(node.peer_of(conn).map(|p| p.to_string()).as_deref(), Some(id), "peer {id} not registered");
    conn
}

fn owner_text(node: &Node, owner: Owner) -> Value {
    match owner {
        Owner::Local => Value::from("self"),
        Owner::Nobody => Value::Null,
        o => Value::from(node.owner_id(o).expect("remote owner has an id").to_string()),
    }
}

#[test]
fn ownership_find_find_prev_next_prev() {
    let v = ring_json();
    let mut checked = 0;
    for sc in v["ownership"].as_array().expect("ownership") {
        let mut cfg = Config::chord("127.0.0.1", 1);
        cfg.id = Some(sc["self_id"].as_str().unwrap().to_owned());
        let mut node = Node::new(cfg, NOW);
        assert_eq!(node.id().value(), &U512::from_str(sc["self_id_int"].as_str().unwrap()).unwrap());
        if !sc["self_leeching"].as_bool().unwrap() {
            node.join().unwrap();
        }
        for p in sc["peers"].as_array().unwrap() {
            add_peer(&mut node, p["id"].as_str().unwrap(), p["leeching"].as_bool().unwrap());
        }
        for q in sc["queries"].as_array().unwrap() {
            let key = U512::from_str(q["key"].as_str().unwrap()).unwrap();
            assert_eq!(owner_text(&node, node.find(&key)), q["find"], "find({key})");
            assert_eq!(owner_text(&node, node.find_prev(&key)), q["find_prev"], "find_prev({key})");
            checked += 2;
        }
        // py2p's `next` is the predecessor and its `prev` the successor (D19).
        assert_eq!(owner_text(&node, node.predecessor()), sc["next"], "py2p next");
        assert_eq!(owner_text(&node, node.successor()), sc["prev"], "py2p prev");
        checked += 2;
    }
    assert!(checked > 0);
}

#[test]
fn dump_data_selects_what_a_closer_peer_takes() {
    let v = ring_json();
    let dd = &v["dump_data"];
    let start = U512::from_str(dd["start"].as_str().unwrap()).unwrap();
    let end = U512::from_str(dd["end"].as_str().unwrap()).unwrap();
    let mut cfg = Config::chord("127.0.0.1", 1);
    cfg.id = Some(base58::encode(&end));
    let mut node = Node::new(cfg, NOW);
    node.join().unwrap();
    // A leeching peer sends the items; this node is the only seeder, so it keeps them.
    let sender = base58::encode(&U512::from(12345u64));
    let conn = add_peer(&mut node, &sender, true);
    let stored = dd["stored"].as_array().unwrap();
    for item in stored {
        let key = U512::from_str(item["key"].as_str().unwrap()).unwrap();
        let store = vec![
            Bytes::from_static(&[flags::STORE]),
            Bytes::from(item["method"].as_str().unwrap().to_owned()),
            Bytes::from(base58::encode(&key)),
            Bytes::from_static(b"value"),
        ];
        node.on_data(conn, &frame(&sender, store), NOW);
    }
    assert_eq!(node.item_count(), stored.len(), "every stored item is held");
    let mut got: Vec<(String, String)> =
        node.dump_data(&start, Some(&end)).into_iter().map(|(m, k, _)| (m.name().to_owned(), k.to_string())).collect();
    let mut want: Vec<(String, String)> = dd["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["method"].as_str().unwrap().to_owned(), i["key"].as_str().unwrap().to_owned()))
        .collect();
    got.sort();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    assert_eq!(node.dump_data(&U512::ZERO, None).len(), stored.len(), "no end selects everything");
    assert!(HashMethod::from_name(b"md5").is_none());
}
