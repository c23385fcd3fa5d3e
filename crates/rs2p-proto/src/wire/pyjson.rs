//! JSON text exactly as Python's `json.dumps` writes it (ASCII only, `", "`
//! between items), and tolerant readers for the JSON packets py2p sends.

use serde_json::Value;

/// A JSON string literal as Python writes it with `ensure_ascii=True`.
///
/// ```
/// assert_eq!(rs2p_proto::wire::pyjson::string("é\"\u{13}"), r#""\u00e9\"\u0013""#);
/// ```
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_string(&mut out, s);
    out
}

/// Appends [`string`]'s text to `out` (no string of its own).
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    use std::fmt::Write as _;
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A peer entry: the address it advertised and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// The peer's node id (base58 text).
    pub id: String,
}

/// The address packet of a handshake: `["HOST", PORT]`, built by string
/// formatting (the host is written verbatim, as py2p does).
pub fn addr_packet(host: &str, port: u16) -> String {
    format!("[\"{host}\", {port}]")
}

/// Reads `["HOST", PORT]`. Returns `None` for anything else.
pub fn parse_addr(text: &[u8]) -> Option<(String, u16)> {
    let value: Value = serde_json::from_slice(text).ok()?;
    addr_from_value(&value)
}

fn addr_from_value(value: &Value) -> Option<(String, u16)> {
    let arr = value.as_array()?;
    if arr.len() != 2 {
        return None;
    }
    let host = arr[0].as_str()?.to_owned();
    let port = u16::try_from(arr[1].as_u64()?).ok()?;
    Some((host, port))
}

/// Writes a peer list as py2p does: `[[["HOST", PORT], "ID"], ...]`.
///
/// ```
/// use rs2p_proto::wire::pyjson::{peers_json, PeerEntry};
/// let e = PeerEntry { host: "127.0.0.1".into(), port: 48001, id: "PeerOne".into() };
/// assert_eq!(peers_json(&[e]), r#"[[["127.0.0.1", 48001], "PeerOne"]]"#);
/// ```
pub fn peers_json(entries: &[PeerEntry]) -> String {
    let mut list = PeersJson::with_entries(entries.len());
    for e in entries {
        list.push(&e.host, e.port, &e.id);
    }
    list.finish()
}

/// Writes [`peers_json`]'s text entry by entry into one string, from
/// borrowed fields (no entry, string or vector per entry).
pub struct PeersJson {
    out: String,
    empty: bool,
}

impl PeersJson {
    /// An empty list, with room for about `n` entries.
    pub fn with_entries(n: usize) -> PeersJson {
        // An entry of an IPv4 host and a 66-character id (a SHA-384 in
        // base58) takes 98 bytes: room for that, so that a list is
        // written without growing its string.
        const ENTRY_BYTES: usize = 104;
        let mut out = String::with_capacity(2 + n * ENTRY_BYTES);
        out.push('[');
        PeersJson { out, empty: true }
    }

    /// Appends `[["HOST", PORT], "ID"]`.
    pub fn push(&mut self, host: &str, port: u16, id: &str) {
        use std::fmt::Write as _;
        if !self.empty {
            self.out.push_str(", ");
        }
        self.empty = false;
        self.out.push_str("[[");
        push_string(&mut self.out, host);
        // Writing to a String cannot fail.
        let _ = write!(self.out, ", {port}], ");
        push_string(&mut self.out, id);
        self.out.push(']');
    }

    /// The list's text.
    pub fn finish(mut self) -> String {
        self.out.push(']');
        self.out
    }
}

/// Why a peer list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerListError {
    /// Not JSON, or not a list.
    #[error("peer list is not a JSON list")]
    NotAList,
    /// More entries than the configured bound.
    #[error("peer list has {count} entries, more than the limit of {limit}")]
    TooLong {
        /// Entries in the list.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
}

/// Reads a peer list, keeping at most `limit` entries' worth of work: a longer
/// list is an error; malformed entries are skipped.
pub fn parse_peers(text: &[u8], limit: usize) -> Result<Vec<PeerEntry>, PeerListError> {
    // Lists in the usual shape are read without a JSON tree; the rest by
    // the general reader, which decides every other case.
    super::peer_list_json::parse(text, limit).unwrap_or_else(|| parse_peers_tree(text, limit))
}

/// [`parse_peers`] through a `serde_json::Value` tree: any JSON text.
pub(crate) fn parse_peers_tree(text: &[u8], limit: usize) -> Result<Vec<PeerEntry>, PeerListError> {
    let value: Value = serde_json::from_slice(text).map_err(|_| PeerListError::NotAList)?;
    let arr = value.as_array().ok_or(PeerListError::NotAList)?;
    if arr.len() > limit {
        return Err(PeerListError::TooLong { count: arr.len(), limit });
    }
    Ok(arr
        .iter()
        .filter_map(|item| {
            let pair = item.as_array()?;
            if pair.len() != 2 {
                return None;
            }
            let (host, port) = addr_from_value(&pair[0])?;
            let id = pair[1].as_str()?.to_owned();
            Some(PeerEntry { host, port, id })
        })
        .collect())
}

/// Reads the `[["HOST", PORT], "ID"]` packet of a route response.
pub fn parse_response_addr(text: &[u8]) -> Option<PeerEntry> {
    let value: Value = serde_json::from_slice(text).ok()?;
    let pair = value.as_array()?;
    if pair.len() != 2 {
        return None;
    }
    let (host, port) = addr_from_value(&pair[0])?;
    Some(PeerEntry { host, port, id: pair[1].as_str()?.to_owned() })
}

/// Writes the `[["HOST", PORT], "ID"]` packet of a route response.
pub fn response_addr_json(entry: &PeerEntry) -> String {
    format!("[[{}, {}], {}]", string(&entry.host), entry.port, string(&entry.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_round_trip_and_limits() {
        let list = vec![
            PeerEntry { host: "127.0.0.1".into(), port: 1, id: "a".into() },
            PeerEntry { host: "::1".into(), port: 65535, id: "b".into() },
        ];
        let text = peers_json(&list);
        assert_eq!(parse_peers(text.as_bytes(), 10).unwrap(), list);
        assert!(matches!(parse_peers(text.as_bytes(), 1), Err(PeerListError::TooLong { .. })));
        assert_eq!(parse_peers(b"not json", 10), Err(PeerListError::NotAList));
        // Malformed entries are skipped, not fatal.
        let mixed = br#"[[["h", 70000], "x"], 5, [["h", 5], "ok"]]"#;
        assert_eq!(parse_peers(mixed, 10).unwrap().len(), 1);
    }

    #[test]
    fn non_bmp_uses_surrogates() {
        assert_eq!(string("😀"), r#""\ud83d\ude00""#);
    }
}
