//! TLS settings of a node: plain data, read by the driver (`net::tls`) when
//! the protocol's encryption is `SSL`. The core itself never touches TLS.

/// SHA-256 of a certificate's DER bytes: how `--tls-trust` names a peer.
pub type Fingerprint = [u8; 32];

/// A TLS handshake not finished this long after the TCP connection opened is
/// abandoned and its connection closed. Below the mesh handshake deadline
/// ([`super::Config::handshake_timeout_ms`], 5 s), which bounds it anyway;
/// a TLS 1.3 handshake takes one round trip.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 4_000;

/// The node's own certificate chain and private key, PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// The certificate first, then any intermediates.
    pub cert_pem: Vec<u8>,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsIdentity").field("cert_pem", &self.cert_pem.len()).finish_non_exhaustive()
    }
}

/// How a node speaks TLS when its protocol's encryption is `SSL`.
///
/// The default is py2p's SSL: a self-signed certificate made at bind (or kept
/// in the data directory), and no peer verified. Setting [`trusted`] or
/// [`ca_pem`] turns on peer authentication: every peer, dialed or accepted,
/// must present a certificate that one of them admits, or the TLS handshake
/// fails (py2p nodes, which present none when they dial, are then refused).
///
/// [`trusted`]: TlsOptions::trusted
/// [`ca_pem`]: TlsOptions::ca_pem
///
/// ```
/// use rs2p_proto::core::{Config, TlsOptions};
/// use rs2p_proto::wire::Protocol;
/// let mut cfg = Config::chord("127.0.0.1", 0);
/// cfg.protocol = Protocol::new("chord", "SSL");
/// cfg.tls = TlsOptions { trusted: Some(vec![[0u8; 32]]), ..TlsOptions::default() };
/// assert!(cfg.tls.authenticates_peers());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The node's certificate and key; `None`: a self-signed one (kept in
    /// the data directory when there is one, so the fingerprint survives
    /// restarts; otherwise new at each bind).
    pub identity: Option<TlsIdentity>,
    /// Fingerprints of the peer certificates to accept (`Some(empty)`
    /// trusts nobody).
    pub trusted: Option<Vec<Fingerprint>>,
    /// PEM CA certificates: a peer whose certificate chains to one of them
    /// is accepted (names are not checked: peers are dialed by address).
    pub ca_pem: Option<Vec<u8>>,
    /// See [`TLS_HANDSHAKE_TIMEOUT_MS`].
    pub handshake_timeout_ms: u64,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions { identity: None, trusted: None, ca_pem: None, handshake_timeout_ms: TLS_HANDSHAKE_TIMEOUT_MS }
    }
}

impl TlsOptions {
    /// True when peers must prove who they are (a trust list or a CA is set).
    pub fn authenticates_peers(&self) -> bool {
        self.trusted.is_some() || self.ca_pem.is_some()
    }
}
