//! TLS for the encryption name `SSL`: py2p's (each node a self-signed
//! certificate, nobody verified) and, beyond py2p, peer authentication by
//! pinned certificate fingerprints or by a CA.
//!
//! As in py2p 0.5.607 (`ssl_wrapper.get_socket`), the node that accepts a
//! connection is the TLS server and presents its certificate; the node that
//! dials is the TLS client, and presents one only when asked, which an rs2p
//! node does only when it authenticates peers. rustls with the `ring`
//! backend; TLS 1.3, or 1.2 for an older OpenSSL on the py2p side.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::core::{Fingerprint, TlsIdentity, TlsOptions};

/// The generated certificate's file in a data directory (a stable
/// fingerprint across restarts).
pub const CERT_FILE: &str = "tls-cert.pem";
/// The generated private key's file in a data directory (mode 0600).
pub const KEY_FILE: &str = "tls-key.pem";
/// Subject name of generated certificates, and the server name a dialer
/// gives when the host is not a valid one (names are never checked).
const CERT_NAME: &str = "rs2p";

/// A node's TLS: what it presents, whom it admits, how long a handshake may take.
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    /// SHA-256 of our certificate (the first of the chain).
    fingerprint: Fingerprint,
    /// Deadline of a TLS handshake, counted from the TCP connection.
    timeout: Duration,
}

impl Tls {
    /// Builds both sides from `opts` and the node's `identity`.
    pub fn new(opts: &TlsOptions, identity: &TlsIdentity) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_slice_iter(&identity.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot read the certificate: {e}"))?;
        let first = chain.first().ok_or("the certificate file holds no certificate")?;
        let fingerprint = fingerprint_of(first);
        let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
            .map_err(|e| format!("cannot read the private key: {e}"))?;
        let policy = Arc::new(PeerPolicy::new(opts, &provider)?);

        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let server = if policy.admits_anyone() {
            server.with_no_client_auth()
        } else {
            server.with_client_cert_verifier(Arc::new(ClientVerifier(Arc::clone(&policy))))
        };
        let mut server = server
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| format!("certificate and key do not fit: {e}"))?;
        // No session resumption either way: py2p makes a new context per
        // socket (nothing to resume), post-handshake tickets would be
        // records py2p's select-driven reader has to wade through, and
        // every peer's certificate is checked on every connection.
        server.send_tls13_tickets = 0;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ServerVerifier(policy)))
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("certificate and key do not fit: {e}"))?;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            fingerprint,
            timeout: Duration::from_millis(opts.handshake_timeout_ms),
        })
    }

    /// Our certificate's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The server side of an accepted connection, within the deadline.
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        match tokio::time::timeout(self.timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Ok(TlsStream::Server(s)),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            Err(_) => Err(format!("TLS handshake not finished within {} ms", self.timeout.as_millis())),
        }
    }

    /// The client side of a dialed connection to `host`, within the deadline.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let name = ServerName::try_from(host.to_owned())
            .or_else(|_| ServerName::try_from(CERT_NAME))
            .map_err(|e| format!("no TLS server name for {host}: {e}"))?;
        match tokio::time::timeout(self.timeout, self.connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(TlsStream::Client(s)),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            Err(_) => Err(format!("TLS handshake not finished within {} ms", self.timeout.as_millis())),
        }
    }
}

/// SHA-256 of a DER certificate.
pub fn fingerprint_of(cert_der: &[u8]) -> Fingerprint {
    Sha256::digest(cert_der).into()
}

/// A fingerprint as 64 lowercase hex digits (the trust-file format).
///
/// ```
/// assert_eq!(rs2p::net::tls::fingerprint_hex(&[0xab; 32]).len(), 64);
/// ```
pub fn fingerprint_hex(fp: &Fingerprint) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a trust file: one SHA-256 fingerprint a line, hex (upper or lower
/// case, colons allowed as `openssl x509 -fingerprint -sha256` prints them),
/// `#` starts a comment, blank lines are skipped.
///
/// ```
/// use rs2p::net::tls::parse_trust_list;
/// let text = format!("# ring A\n{}  # node 1\n\n", "AB:".repeat(31) + "AB");
/// assert_eq!(parse_trust_list(&text).unwrap(), vec![[0xab; 32]]);
/// assert!(parse_trust_list("12 34").is_err());
/// ```
pub fn parse_trust_list(text: &str) -> Result<Vec<Fingerprint>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let hex: String = line.chars().filter(|c| *c != ':').collect();
        let bad = || format!("line {}: expected a SHA-256 fingerprint (64 hex digits), got {line:?}", n + 1);
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut fp = [0u8; 32];
        for (i, b) in fp.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        out.push(fp);
    }
    Ok(out)
}

/// A fresh self-signed certificate (ECDSA P-256), as py2p makes one per node.
pub fn self_signed() -> Result<TlsIdentity, String> {
    let made = rcgen::generate_simple_self_signed(vec![CERT_NAME.to_owned()])
        .map_err(|e| format!("cannot make a certificate: {e}"))?;
    Ok(TlsIdentity { cert_pem: made.cert.pem().into_bytes(), key_pem: made.key_pair.serialize_pem().into_bytes() })
}

/// The self-signed identity kept in a data directory: read if there, made
/// and written (the key readable by its owner only) if not.
pub fn identity_in_dir(dir: &Path) -> Result<TlsIdentity, String> {
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if cert.exists() && key.exists() {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        return Ok(TlsIdentity { cert_pem: read(&cert)?, key_pem: read(&key)? });
    }
    let id = self_signed()?;
    write_private(&key, &id.key_pem).map_err(|e| format!("cannot write {}: {e}", key.display()))?;
    std::fs::write(&cert, &id.cert_pem).map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    Ok(id)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(bytes)
}

/// Whom a node admits: anyone (py2p's SSL), or the peers whose certificate
/// is pinned or chains to a trusted CA.
#[derive(Debug)]
struct PeerPolicy {
    /// Accepted certificate fingerprints.
    pinned: Option<HashSet<Fingerprint>>,
    /// Trusted CAs, for the certificates of peers we dial.
    roots: Option<Arc<RootCertStore>>,
    /// The same CAs, for the certificates of peers that dial us.
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
    /// Signature algorithms of the provider, for the handshake signatures.
    algs: WebPkiSupportedAlgorithms,
}

impl PeerPolicy {
    fn new(opts: &TlsOptions, provider: &Arc<CryptoProvider>) -> Result<PeerPolicy, String> {
        let pinned = opts.trusted.as_ref().map(|list| list.iter().copied().collect::<HashSet<_>>());
        let (roots, client_ca) = match &opts.ca_pem {
            None => (None, None),
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| format!("cannot read the CA file: {e}"))?;
                    roots.add(cert).map_err(|e| format!("not a usable CA certificate: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("the CA file holds no certificate".to_owned());
                }
                let roots = Arc::new(roots);
                let client = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::clone(&roots),
                    Arc::clone(provider),
                )
                .build()
                .map_err(|e| format!("cannot use the CA: {e}"))?;
                (Some(roots), Some(client))
            }
        };
        Ok(PeerPolicy { pinned, roots, client_ca, algs: provider.signature_verification_algorithms })
    }

    fn admits_anyone(&self) -> bool {
        self.pinned.is_none() && self.roots.is_none()
    }

    fn pinned(&self, cert: &CertificateDer<'_>) -> bool {
        self.pinned.as_ref().is_some_and(|p| p.contains(&fingerprint_of(cert)))
    }

    fn refused(cert: &CertificateDer<'_>, why: &str) -> rustls::Error {
        rustls::Error::General(format!(
            "peer certificate {} is not trusted{why}",
            fingerprint_hex(&fingerprint_of(cert))
        ))
    }
}

/// Checks the certificate of a peer we dialed.
#[derive(Debug)]
struct ServerVerifier(Arc<PeerPolicy>);

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let p = &self.0;
        if p.admits_anyone() || p.pinned(end_entity) {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(roots) = &p.roots else { return Err(PeerPolicy::refused(end_entity, "")) };
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(&parsed, roots, intermediates, now, p.algs.all)
            .map_err(|e| PeerPolicy::refused(end_entity, &format!(" ({e})")))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.algs.supported_schemes()
    }
}

/// Checks the certificate of a peer that dialed us (only when peers are
/// authenticated: a certificate is then required).
#[derive(Debug)]
struct ClientVerifier(Arc<PeerPolicy>);

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let p = &self.0;
        if p.pinned(end_entity) {
            return Ok(ClientCertVerified::assertion());
        }
        let Some(ca) = &p.client_ca else { return Err(PeerPolicy::refused(end_entity, "")) };
        ca.verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| PeerPolicy::refused(end_entity, &format!(" ({e})")))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.algs.supported_schemes()
    }
}
