//! The protocol object (subnet + encryption), its id, and node-id derivation.

use sha2::{Digest, Sha256, Sha384};

use super::base58;

/// py2p's protocol version text, hashed into every protocol id.
pub const PROTOCOL_VERSION: &str = "0.5";

/// py2p's encryption name for plain TCP.
pub const PLAINTEXT: &str = "Plaintext";

/// py2p's encryption name for TLS (`ssl_wrapper`): the acceptor is the TLS
/// server with a self-signed certificate, the dialer the TLS client.
pub const SSL: &str = "SSL";

/// A subnet and an encryption name. Nodes only talk to nodes with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Protocol {
    /// Free-form subnet name (`"chord"` for py2p's chord default).
    pub subnet: String,
    /// `"Plaintext"` (plain TCP) or `"SSL"`.
    pub encryption: String,
}

impl Protocol {
    /// A protocol from its two parts.
    pub fn new(subnet: impl Into<String>, encryption: impl Into<String>) -> Self {
        Protocol { subnet: subnet.into(), encryption: encryption.into() }
    }

    /// True when connections of this protocol are wrapped in TLS
    /// (encryption [`SSL`]).
    pub fn is_ssl(&self) -> bool {
        self.encryption == SSL
    }

    /// True for the encryption names py2p knows, [`PLAINTEXT`] and [`SSL`];
    /// py2p's `chord_daemon` raises `ValueError` for any other, and rs2p's
    /// `bind` refuses it.
    ///
    /// ```
    /// use rs2p_proto::wire::Protocol;
    /// assert!(Protocol::new("chord", "SSL").encryption_known());
    /// assert!(!Protocol::new("chord", "ssl").encryption_known());
    /// ```
    pub fn encryption_known(&self) -> bool {
        self.encryption == PLAINTEXT || self.encryption == SSL
    }

    /// py2p's `mesh_socket` default: `("mesh", "Plaintext")`.
    pub fn mesh_default() -> Self {
        Protocol::new("mesh", PLAINTEXT)
    }

    /// py2p's `chord_socket` default: `("chord", "Plaintext")`.
    pub fn chord_default() -> Self {
        Protocol::new("chord", PLAINTEXT)
    }

    /// The id: base58 of `sha256(subnet ‖ encryption ‖ "0.5")`, as py2p's
    /// `protocol.id` (so `SSL` and `Plaintext` nodes of one subnet differ).
    ///
    /// ```
    /// use rs2p_proto::wire::Protocol;
    /// assert_eq!(Protocol::chord_default().id(), "EhuZPdeQhKLbD5vmCFNNP5avM4evzSjkgczwQwWvJbN3");
    /// assert_eq!(Protocol::new("chord", "SSL").id(), "6tm5Ww9TfN9iE9zwaxM9dHfxymtJb1JaALcPUauzpDnn");
    /// ```
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.subnet.as_bytes());
        h.update(self.encryption.as_bytes());
        h.update(PROTOCOL_VERSION.as_bytes());
        base58::encode_be_bytes(&h.finalize())
    }
}

/// Python's `str()` of a `(host, port)` tuple: `('127.0.0.1', 48101)`.
///
/// Hosts are written between single quotes as Python's `repr` does for plain
/// hosts (names and IP literals); a host containing a quote or a backslash is
/// escaped as `repr` would.
pub fn python_addr_str(host: &str, port: u16) -> String {
    let mut out = String::with_capacity(host.len() + 12);
    out.push_str("('");
    for c in host.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push_str("', ");
    out.push_str(&port.to_string());
    out.push(')');
    out
}

/// A node id as py2p derives it: base58 of `sha384(str(out_addr) ‖ protocol_id ‖ salt)`.
///
/// `salt` is a UUID4 text, one per process in py2p.
///
/// ```
/// use rs2p_proto::wire::{node_id, Protocol};
/// let id = node_id("127.0.0.1", 48101, &Protocol::chord_default(), "00000000-0000-4000-8000-000000000000");
/// assert!(id.len() >= 60);
/// ```
pub fn node_id(host: &str, port: u16, protocol: &Protocol, salt: &str) -> String {
    let mut h = Sha384::new();
    h.update(python_addr_str(host, port).as_bytes());
    h.update(protocol.id().as_bytes());
    h.update(salt.as_bytes());
    base58::encode_be_bytes(&h.finalize())
}

/// A UUID4 text (lowercase, hyphenated) made of 16 bytes the caller drew,
/// usable as a node-id salt. The protocol core draws no randomness: the
/// tokio shell passes random bytes (`rs2p::net::random_salt`), the
/// simulator bytes derived from its seed.
///
/// ```
/// use rs2p_proto::wire::protocol::salt_from_bytes;
/// assert_eq!(salt_from_bytes([0; 16]), "00000000-0000-4000-8000-000000000000");
/// ```
pub fn salt_from_bytes(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_is_uuid4_shaped() {
        let s = salt_from_bytes([0xA5; 16]);
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!("89ab".contains(&s[19..20]));
    }

    #[test]
    fn addr_str_matches_python() {
        assert_eq!(python_addr_str("127.0.0.1", 48101), "('127.0.0.1', 48101)");
    }
}
