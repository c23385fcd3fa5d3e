//! Encryption `SSL` (issue 16): TLS between rs2p nodes and real py2p 0.5.607
//! SSL nodes, the separation of SSL and Plaintext, peer authentication
//! (`--tls-trust`, `--tls-ca`), bounded handshakes, and what is on the wire.
//!
//! The mixed py2p/rs2p SSL ring is `interop_chord::mixed_ssl_ring_3_plus_3`,
//! which uses that file's harness for py2p's known defects.
//!
//! Every test waits on conditions with bounded polling and binds 127.0.0.1
//! with ephemeral ports; py2p processes and `rs2p` children are killed on drop.

use rs2p_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rs2p::core::{Config, TlsIdentity, TlsOptions};
use rs2p::net::tls::{fingerprint_hex, fingerprint_of};
use rs2p::wire::Protocol;
use rs2p::ChordSocket;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::json;
use support::cli::{rs2p, Node};
use support::py2p_node::Py2pNode;
use support::{closed_by_peer, wait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a condition may take to come true.
const BUDGET: Duration = Duration::from_secs(15);

fn config(encryption: &str, tls: TlsOptions) -> Config {
    let mut cfg = Config::chord("127.0.0.1", 0);
    cfg.protocol = Protocol::new("chord", encryption);
    cfg.tls = tls;
    cfg
}

/// A seeding rs2p node on an ephemeral port.
async fn node(encryption: &str, tls: TlsOptions) -> ChordSocket {
    let s = ChordSocket::bind_with("127.0.0.1:0", config(encryption, tls)).await.expect("bind");
    s.join().expect("join");
    s
}

fn addr(s: &ChordSocket) -> String {
    s.local_addr().to_string()
}

/// True once `a` sees `b` as a seeding peer.
async fn linked(a: &ChordSocket, b: &ChordSocket) -> bool {
    let id = b.id();
    wait::holds_within(BUDGET, || a.data_storing().contains(&id)).await
}

/// `a` and `b` never link: a dial either way fails, and neither lists the other.
async fn never_link(a: &ChordSocket, b: &ChordSocket, what: &str) {
    assert!(a.connect(&addr(b)).await.is_err(), "{what}: a dial from the first was accepted");
    assert!(b.connect(&addr(a)).await.is_err(), "{what}: a dial from the second was accepted");
    assert!(!a.data_storing().contains(&b.id()), "{what}: linked anyway");
    assert!(!b.data_storing().contains(&a.id()), "{what}: linked anyway");
}

/// A get that must come back with `value` within the budget.
async fn get_eventually(s: &ChordSocket, key: &str, value: &str) {
    wait::until_ok_async(&format!("get {key}"), BUDGET, Duration::from_millis(100), || async move {
        match s.get_timeout(key, Duration::from_secs(2)).await {
            Ok(v) if v == value.as_bytes() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

fn fingerprint(id: &TlsIdentity) -> [u8; 32] {
    let cert = CertificateDer::from_pem_slice(&id.cert_pem).expect("a certificate");
    fingerprint_of(&cert)
}

/// A certificate authority, and identities it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "rs2p test CA");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    fn pem(&self) -> Vec<u8> {
        self.cert.pem().into_bytes()
    }

    fn issue(&self) -> TlsIdentity {
        let key = rcgen::KeyPair::generate().expect("node key");
        let params = rcgen::CertificateParams::new(vec!["node".to_owned()]).expect("node params");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("node certificate");
        TlsIdentity { cert_pem: cert.pem().into_bytes(), key_pem: key.serialize_pem().into_bytes() }
    }
}

/// Encryption is part of the protocol id, as py2p computes it: SSL and
/// Plaintext nodes of one subnet never link, rs2p or py2p, either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_plaintext_never_link() {
    let t = Instant::now();
    assert_ne!(Protocol::new("chord", "SSL").id(), Protocol::new("chord", "Plaintext").id());
    let unknown = ChordSocket::bind_with("127.0.0.1:0", config("TLS", TlsOptions::default())).await;
    assert!(matches!(unknown, Err(rs2p::Error::UnknownEncryption(_))), "{:?}", unknown.err());

    let (py_plain, py_ssl) = tokio::join!(
        tokio::task::spawn_blocking(|| Py2pNode::start_with("chord", None, "Plaintext")),
        tokio::task::spawn_blocking(|| Py2pNode::start_with("chord", None, "SSL")),
    );
    let (mut py_plain, mut py_ssl) = (py_plain.expect("py2p"), py_ssl.expect("py2p"));
    let ssl = node("SSL", TlsOptions::default()).await;
    let plain = node("Plaintext", TlsOptions::default()).await;
    never_link(&ssl, &plain, "rs2p SSL and rs2p Plaintext").await;

    // Nodes of the same kind link, through TLS.
    let res = ssl.connect(&py_ssl.addr()).await;
    assert!(res.is_ok(), "rs2p SSL could not link py2p SSL: {res:?}");
    assert!(ssl.disconnect(&res.expect("linked")));
    assert!(wait::holds_within(BUDGET, || ssl.stats().connections == 0).await, "{:?}", ssl.stats());
    // py2p notices the close on its own thread, a moment later (longer on
    // a loaded machine): the checks below are about links made after it.
    tokio::task::block_in_place(|| {
        wait::until_ok("py2p SSL to drop the link rs2p closed", BUDGET, || {
            let peers = py_ssl.peers();
            if peers["routing"] == json!([]) {
                Ok(())
            } else {
                Err(format!("py2p SSL still routes: {peers}"))
            }
        })
    });

    // rs2p SSL dialing py2p Plaintext, and both py2p nodes dialing rs2p of
    // the other kind.
    assert!(ssl.connect(&py_plain.addr()).await.is_err(), "rs2p SSL linked py2p Plaintext");
    let ssl_port = ssl.local_addr().port();
    let plain_port = plain.local_addr().port();
    tokio::task::block_in_place(|| {
        py_plain.connect(ssl_port);
        py_ssl.connect(plain_port);
    });
    // Bounded: both sides close during the handshake within a second or so.
    let quiet = wait::holds_within(BUDGET, || ssl.stats().connections == 0 && plain.stats().connections == 0).await;
    assert!(quiet, "mismatched connections stay open: {:?} {:?}", ssl.stats(), plain.stats());
    assert_eq!(ssl.stats().peers + plain.stats().peers, 0);
    let routing = tokio::task::block_in_place(|| (py_plain.peers(), py_ssl.peers()));
    assert_eq!(routing.0["routing"], json!([]), "py2p Plaintext: {}", routing.0);
    assert_eq!(routing.1["routing"], json!([]), "py2p SSL: {}", routing.1);
    // Last: rs2p Plaintext dialing py2p SSL is refused, and the failed TLS
    // accept kills py2p's network thread (D32), so nothing follows it.
    assert!(plain.connect(&py_ssl.addr()).await.is_err(), "rs2p Plaintext linked py2p SSL");
    ssl.shutdown().await.expect("shutdown");
    plain.shutdown().await.expect("shutdown");
    eprintln!("ssl_and_plaintext_never_link: {:.1}s", t.elapsed().as_secs_f64());
}

/// `trusted` (fingerprints) and `ca_pem`: a peer that cannot prove it is
/// refused at the TLS handshake, whether it dials or is dialed; trusted
/// peers link and serve. A py2p-style SSL node (no client certificate
/// checked, a throwaway one presented) is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_list_and_ca_admit_only_proven_peers() {
    let t = Instant::now();
    let (ida, idb) = (rs2p::net::tls::self_signed().unwrap(), rs2p::net::tls::self_signed().unwrap());
    let idc = rs2p::net::tls::self_signed().unwrap();
    let pins = Some(vec![fingerprint(&ida), fingerprint(&idb)]);
    let pinned =
        |id: &TlsIdentity| TlsOptions { identity: Some(id.clone()), trusted: pins.clone(), ..Default::default() };
    let a = node("SSL", pinned(&ida)).await;
    let b = node("SSL", pinned(&idb)).await;
    // C trusts A and B, but they do not trust C.
    let c = node("SSL", pinned(&idc)).await;
    assert_eq!(a.tls_fingerprint(), Some(fingerprint_hex(&fingerprint(&ida))));
    b.connect(&addr(&a)).await.expect("trusted peers link");
    assert!(linked(&a, &b).await && linked(&b, &a).await);
    never_link(&a, &c, "an untrusted node").await;
    let open = node("SSL", TlsOptions::default()).await;
    assert!(open.connect(&addr(&a)).await.is_err(), "a py2p-style SSL node passed a trust list");
    assert!(a.connect(&addr(&open)).await.is_err(), "a trust list admitted a py2p-style SSL node");
    b.set("pinned-key", "pinned-value").expect("set");
    get_eventually(&a, "pinned-key", "pinned-value").await;

    // A CA: nodes with certificates it signed link; a self-signed one does not.
    let ca = Ca::new();
    let by_ca = |id: TlsIdentity| TlsOptions { identity: Some(id), ca_pem: Some(ca.pem()), ..Default::default() };
    let d = node("SSL", by_ca(ca.issue())).await;
    let e = node("SSL", by_ca(ca.issue())).await;
    let f = node("SSL", by_ca(rs2p::net::tls::self_signed().unwrap())).await;
    e.connect(&addr(&d)).await.expect("CA-signed peers link");
    assert!(linked(&d, &e).await && linked(&e, &d).await);
    never_link(&d, &f, "a node the CA did not sign").await;
    e.set("ca-key", "ca-value").expect("set");
    get_eventually(&d, "ca-key", "ca-value").await;
    for s in [a, b, c, open, d, e, f] {
        s.shutdown().await.expect("shutdown");
    }
    eprintln!("trust_list_and_ca_admit_only_proven_peers: {:.1}s", t.elapsed().as_secs_f64());
}

/// The CLI flags: `rs2p node --tls --tls-trust --tls-cert --tls-key` prints
/// its fingerprint; a client presenting a pinned certificate sets and gets,
/// one with a throwaway certificate is refused (exit 3); `--tls-ca` works
/// the same; TLS options without `--tls` are a usage error.
#[test]
fn cli_tls_flags() {
    let t = Instant::now();
    let dir = std::env::temp_dir().join(format!("rs2p-tls-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p.to_string_lossy().into_owned()
    };
    let (server, client) = (rs2p::net::tls::self_signed().unwrap(), rs2p::net::tls::self_signed().unwrap());
    let trust = format!(
        "# the ring\n{}\n{}  # the client\n",
        fingerprint_hex(&fingerprint(&server)),
        fingerprint_hex(&fingerprint(&client)).to_uppercase()
    );
    let trust = write("trust.txt", trust.as_bytes());
    let (scert, skey) = (write("s.crt", &server.cert_pem), write("s.key", &server.key_pem));
    let (ccert, ckey) = (write("c.crt", &client.cert_pem), write("c.key", &client.key_pem));
    let n = Node::start(&["--join", "--tls", "--tls-trust", &trust, "--tls-cert", &scert, "--tls-key", &skey]);
    let line = format!("rs2p node TLS certificate sha256 {}\n", fingerprint_hex(&fingerprint(&server)));
    let deadline = Instant::now() + BUDGET;
    while !n._stdout.text().contains(&line) {
        assert!(Instant::now() < deadline, "no fingerprint line: {:?}", n._stdout.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let auth = ["--tls", "--tls-trust", trust.as_str(), "--tls-cert", ccert.as_str(), "--tls-key", ckey.as_str()];
    let mut set = vec!["set", "k", "v", "--peer", &n.addr];
    set.extend_from_slice(&auth);
    rs2p(&set).expect_quiet_ok();
    let mut get = vec!["get", "k", "--peer", &n.addr];
    get.extend_from_slice(&auth);
    assert_eq!(rs2p(&get).expect_code(0).stdout, "v\n");
    rs2p(&["get", "k", "--peer", &n.addr, "--tls", "--timeout", "3"]).expect_one_line_error(3);
    rs2p(&["get", "k", "--peer", &n.addr, "--tls-trust", &trust]).expect_code(2);
    drop(n);

    let ca = Ca::new();
    let ca_file = write("ca.pem", &ca.pem());
    let (s2, c2) = (ca.issue(), ca.issue());
    let (s2c, s2k) = (write("s2.crt", &s2.cert_pem), write("s2.key", &s2.key_pem));
    let (c2c, c2k) = (write("c2.crt", &c2.cert_pem), write("c2.key", &c2.key_pem));
    let n = Node::start(&["--join", "--tls", "--tls-ca", &ca_file, "--tls-cert", &s2c, "--tls-key", &s2k]);
    let by_ca = ["--tls", "--tls-ca", ca_file.as_str(), "--tls-cert", c2c.as_str(), "--tls-key", c2k.as_str()];
    let mut set = vec!["set", "k2", "v2", "--peer", &n.addr];
    set.extend_from_slice(&by_ca);
    rs2p(&set).expect_quiet_ok();
    let mut get = vec!["get", "k2", "--peer", &n.addr];
    get.extend_from_slice(&by_ca);
    assert_eq!(rs2p(&get).expect_code(0).stdout, "v2\n");
    let mut stranger = vec!["get", "k2", "--peer", &n.addr, "--timeout", "3", "--tls", "--tls-ca", &ca_file];
    stranger.extend_from_slice(&["--tls-cert", &ccert, "--tls-key", &ckey]);
    rs2p(&stranger).expect_one_line_error(3);
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("cli_tls_flags: {:.1}s", t.elapsed().as_secs_f64());
}

/// Garbage, a half ClientHello and a silent connection on a TLS port are
/// closed (the silent ones at the TLS deadline, their slots released)
/// while the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_half_handshakes_are_closed() {
    let t = Instant::now();
    let deadline_ms = 1500;
    let opts = TlsOptions { handshake_timeout_ms: deadline_ms, ..Default::default() };
    let a = node("SSL", opts).await;
    let b = node("SSL", TlsOptions::default()).await;
    b.connect(&addr(&a)).await.expect("link");
    let baseline = a.stats().connections;

    let mut garbage = TcpStream::connect(a.local_addr()).await.expect("connect");
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n\x00\x01\x02 not TLS at all").await.expect("write");
    // A record header announcing 512 bytes of ClientHello, and only part of it.
    let mut half = TcpStream::connect(a.local_addr()).await.expect("connect");
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).await.expect("write");
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(a.local_addr()).await.expect("connect"));
    }
    // The silent ones (and perhaps the half one) are held until the deadline.
    assert!(wait::holds_within(BUDGET, || a.stats().connections >= baseline + 20).await, "{:?}", a.stats());

    // Each is closed: the garbage at once, the others at the deadline.
    let limit = Duration::from_millis(deadline_ms) + Duration::from_secs(3);
    assert!(closed_by_peer(&mut garbage, limit).await, "garbage connection left open");
    assert!(closed_by_peer(&mut half, limit).await, "half handshake left open");
    for mut s in silent {
        assert!(closed_by_peer(&mut s, limit).await, "silent connection left open");
    }
    assert!(
        wait::holds_within(BUDGET, || a.stats().connections == baseline).await,
        "slots not released: {:?}",
        a.stats()
    );

    // Still serving, over TLS.
    b.set("after-garbage", "still here").expect("set");
    get_eventually(&a, "after-garbage", "still here").await;
    let c = node("SSL", TlsOptions::default()).await;
    c.connect(&addr(&a)).await.expect("a new peer links after the garbage");
    for s in [a, b, c] {
        s.shutdown().await.expect("shutdown");
    }
    eprintln!("garbage_and_half_handshakes_are_closed: {:.1}s", t.elapsed().as_secs_f64());
}

/// A TCP relay that records every byte it forwards, both ways.
struct RecordingProxy {
    addr: String,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    async fn start(target: String) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(&target).await else { continue };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(relay(ri, wo, Arc::clone(&log)));
                tokio::spawn(relay(ro, wi, Arc::clone(&log)));
            }
        });
        RecordingProxy { addr, seen }
    }

    fn contains(&self, needle: &[u8]) -> bool {
        self.seen.lock().unwrap().windows(needle.len()).any(|w| w == needle)
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                log.lock().unwrap().extend_from_slice(&buf[..k]);
                if to.write_all(&buf[..k]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Through a recording relay between two nodes, a set and a get work; with
/// SSL the recorded bytes hold neither the key nor the value (with
/// Plaintext, the control, they hold both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_proxy_sees_no_plaintext() {
    let t = Instant::now();
    for encryption in ["Plaintext", "SSL"] {
        let (key, value) = (format!("wire-key-{encryption}-5e1f"), format!("wire-value-{encryption}-93ab"));
        let a = node(encryption, TlsOptions::default()).await;
        let b = node(encryption, TlsOptions::default()).await;
        let proxy = RecordingProxy::start(addr(&a)).await;
        b.connect(&proxy.addr).await.expect("link through the proxy");
        assert!(linked(&a, &b).await && linked(&b, &a).await);
        b.set(key.as_str(), value.clone()).expect("set");
        get_eventually(&a, &key, &value).await;
        get_eventually(&b, &key, &value).await;
        assert!(proxy.len() > 0);
        let visible = proxy.contains(key.as_bytes()) || proxy.contains(value.as_bytes());
        assert_eq!(visible, encryption == "Plaintext", "{encryption}: key or value visible on the wire: {visible}");
        a.shutdown().await.expect("shutdown");
        b.shutdown().await.expect("shutdown");
    }
    eprintln!("recording_proxy_sees_no_plaintext: {:.1}s", t.elapsed().as_secs_f64());
}

/// Without `--tls-cert`, a node with a data directory keeps its generated
/// certificate there: the same fingerprint after a restart, so a trust
/// file stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_keeps_the_certificate() {
    let dir = std::env::temp_dir().join(format!("rs2p-tls-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bind = || {
        let mut cfg = config("SSL", TlsOptions::default());
        cfg.data_dir = Some(dir.clone());
        ChordSocket::bind_with("127.0.0.1:0", cfg)
    };
    let first = bind().await.expect("bind");
    let fingerprint = first.tls_fingerprint().expect("a fingerprint");
    first.shutdown().await.expect("shutdown");
    let second = bind().await.expect("bind again");
    assert_eq!(second.tls_fingerprint(), Some(fingerprint));
    second.shutdown().await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
