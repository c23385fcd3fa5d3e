//! rs2p nodes over real sockets on loopback, and one py2p chord node.

use rs2p_test_support as support;

use std::time::Duration;

use rs2p::net::ChordSocket;
use serde_json::json;
use support::py2p_node::Py2pNode;
use support::wait;

/// Bound on waiting for a link or a key list to catch up.
const LIMIT: Duration = Duration::from_secs(10);

async fn read_until(s: &ChordSocket, key: &str, want: &str) {
    let mut last = None;
    for _ in 0..100 {
        match s.get_timeout(key, Duration::from_secs(2)).await {
            Ok(v) if v == want.as_bytes() => return,
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{key} never read as {want:?}; last answer {last:?}");
}

/// Two joined rs2p nodes, `b` connected to `a`, each seeing the other seed.
async fn seeding_pair() -> (ChordSocket, ChordSocket) {
    let a = ChordSocket::bind("127.0.0.1:0").await.unwrap();
    let b = ChordSocket::bind("127.0.0.1:0").await.unwrap();
    a.join().unwrap();
    b.join().unwrap();
    b.connect(&a.local_addr().to_string()).await.unwrap();
    wait::until("meta exchange", LIMIT, || a.data_storing().len() == 1 && b.data_storing().len() == 1).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs2p_pair_set_get() {
    let (a, b) = seeding_pair().await;
    b.set("colour", "blue").unwrap();
    // A set is fire-and-forget (as in py2p): poll until the stores have landed.
    read_until(&a, "colour", "blue").await;
    assert_eq!(b.get("colour").await.unwrap(), "blue");
    assert!(matches!(a.get("nothing").await, Err(rs2p::Error::Get(rs2p::core::GetError::NotFound))));
    a.close().unwrap();
    assert!(a.close().is_err(), "a second close is an error");
    b.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs2p_joins_py2p_node() {
    let mut py = tokio::task::spawn_blocking(|| Py2pNode::start("chord", None)).await.unwrap();
    py.cmd(json!({"op": "join"}));
    py.set("from-py", "py-value");
    let r = ChordSocket::bind("127.0.0.1:0").await.unwrap();
    r.join().unwrap();
    let peer = r.connect(&py.addr()).await.unwrap();
    assert_eq!(peer.as_str(), py.id);
    wait::until("py2p's meta", LIMIT, || r.data_storing().len() == 1).await;
    // py2p hands the items we now own over after the meta exchange.
    read_until(&r, "from-py", "py-value").await;
    r.set("from-rs", "rs-value").unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let mut last = Err(String::new());
        for _ in 0..50 {
            last = py.get("from-rs", 5.0);
            if last.as_deref() == Ok("rs-value") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (py, last)
    })
    .await
    .unwrap();
    assert_eq!(got.1, Ok("rs-value".to_owned()), "py2p side could not read rs2p's set");
    r.close().unwrap();
}

/// A socket's tasks run on the runtime it was bound in: a connection made
/// from another, short-lived runtime (or a plain thread) outlives it.
#[test]
fn connection_made_from_another_runtime_outlives_it() {
    let home = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (a, b) = home.block_on(async {
        let a = ChordSocket::bind("127.0.0.1:0").await.unwrap();
        let b = ChordSocket::bind("127.0.0.1:0").await.unwrap();
        a.join().unwrap();
        b.join().unwrap();
        (a, b)
    });
    // Connect from a runtime of its own, then shut that runtime down.
    {
        let visitor = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        visitor.block_on(async {
            b.connect(&a.local_addr().to_string()).await.unwrap();
            wait::until("meta exchange", LIMIT, || a.data_storing().len() == 1 && b.data_storing().len() == 1).await;
        });
    }
    // From a plain thread (no runtime): the sync calls work.
    let b2 = b.clone();
    std::thread::spawn(move || b2.set("k", "v").unwrap()).join().unwrap();
    // The link is still up, served by the home runtime.
    home.block_on(async {
        read_until(&a, "k", "v").await;
        assert_eq!(a.data_storing().len(), 1, "the link died with the runtime that made it");
        assert_eq!(b.get("k").await.unwrap(), "v");
        a.close().unwrap();
        b.close().unwrap();
    });
}

/// items / values / copy over more keys than one batch of gets in flight,
/// then pop, pop_or and popitem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_values_copy_and_pops_over_a_pair() {
    let (a, b) = seeding_pair().await;
    let n = rs2p::net::ITEMS_IN_FLIGHT * 2 + 10;
    let want: std::collections::HashMap<bytes::Bytes, bytes::Bytes> =
        (0..n).map(|i| (format!("item-{i}").into(), format!("value {i}").into())).collect();
    for (i, (k, v)) in want.iter().enumerate() {
        [&a, &b][i % 2].set(k, v.clone()).unwrap();
    }
    wait::until("every key in a's key list", LIMIT, || a.keys().len() == n).await;
    // Sets are fire-and-forget: the last one written through each node is readable.
    for (k, v) in want.iter() {
        read_until(&a, std::str::from_utf8(k).unwrap(), std::str::from_utf8(v).unwrap()).await;
    }
    let items = a.items().await;
    assert_eq!(items.len(), n);
    assert_eq!(items.into_iter().collect::<std::collections::HashMap<_, _>>(), want);
    let mut values = b.values().await;
    let mut expected: Vec<bytes::Bytes> = want.values().cloned().collect();
    values.sort();
    expected.sort();
    assert_eq!(values, expected);
    assert_eq!(a.copy().await, want);

    assert_eq!(a.pop("item-0").await.unwrap(), "value 0");
    wait::until("the pop to reach b's key list", LIMIT, || !b.keys().iter().any(|k| k == "item-0")).await;
    assert!(matches!(b.get("item-0").await, Err(rs2p::Error::Get(rs2p::core::GetError::NotFound))));
    assert_eq!(a.pop_or("item-0", "gone").await, "gone");
    let (k, v) = b.popitem().await.unwrap();
    assert_eq!(want.get(&k), Some(&v));
    assert!(!b.keys().contains(&k));
    // The delete's stores travel before its notify on the same link.
    wait::until("the popitem to reach a's key list", LIMIT, || !a.keys().contains(&k)).await;
    assert_eq!(a.items().await.len(), n - 2);
    a.close().unwrap();
    b.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_ends_the_wait_for_a_message() {
    let a = rs2p::MeshSocket::bind("127.0.0.1:0").await.unwrap();
    let b = rs2p::MeshSocket::bind("127.0.0.1:0").await.unwrap();
    b.connect(&a.local_addr().to_string()).await.unwrap();
    wait::until("a knows b", LIMIT, || a.peers().len() == 1).await;
    b.broadcast(&[bytes::Bytes::from_static(b"one")]);
    let first = tokio::time::timeout(LIMIT, a.next_message_or_closed()).await.expect("a message in time");
    assert_eq!(first.expect("a message, not a close").args(), [bytes::Bytes::from_static(b"one")]);
    // Nothing queued: a waiter is woken by the close, and told so.
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move { a.next_message_or_closed().await })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    a.close().unwrap();
    assert!(tokio::time::timeout(LIMIT, waiter).await.expect("woken by the close").unwrap().is_none());
    assert!(a.next_message_or_closed().await.is_none(), "after the close, at once");
    b.close().unwrap();
}
