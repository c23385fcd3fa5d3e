//! A peer list read straight into entries, without a JSON tree: the
//! common shape `[[["HOST", PORT], "ID"], ...]` with plain ASCII strings.
//! Anything else (escapes, other numbers, other shapes, malformed text) is
//! left to the general reader ([`super::pyjson::parse_peers`] falls back to
//! it), so both give the same answer for every input.

use super::pyjson::{PeerEntry, PeerListError};

/// Reads `text` if it is a peer list in the simple shape: `None` when it is
/// anything else (the general reader decides then), else what the general
/// reader would return.
pub(crate) fn parse(text: &[u8], limit: usize) -> Option<Result<Vec<PeerEntry>, PeerListError>> {
    let mut r = Reader { text, at: 0 };
    r.skip_ws();
    r.eat(b'[')?;
    let mut entries = Vec::new();
    let mut count = 0usize;
    r.skip_ws();
    if !r.eat_if(b']') {
        loop {
            let entry = r.entry()?;
            count += 1;
            // A list over the limit is refused whole once it has been
            // read to its end (the general reader's order of checks):
            // what is over the limit is not kept meanwhile.
            if count <= limit {
                entries.push(entry);
            }
            r.skip_ws();
            if r.eat_if(b']') {
                break;
            }
            r.eat(b',')?;
            r.skip_ws();
        }
    }
    r.skip_ws();
    if r.at != text.len() {
        return None;
    }
    if count > limit {
        return Some(Err(PeerListError::TooLong { count, limit }));
    }
    Some(Ok(entries))
}

/// A cursor over the text; every method returns `None` (or false) where
/// the text leaves the simple shape.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.eat_if(byte).then_some(())
    }

    fn eat_if(&mut self, byte: u8) -> bool {
        let hit = self.text.get(self.at) == Some(&byte);
        self.at += usize::from(hit);
        hit
    }

    /// `byte`, then any whitespace.
    fn punct(&mut self, byte: u8) -> Option<()> {
        self.eat(byte)?;
        self.skip_ws();
        Some(())
    }

    /// `[["HOST", PORT], "ID"]`, whitespace allowed between tokens.
    fn entry(&mut self) -> Option<PeerEntry> {
        self.punct(b'[')?;
        self.punct(b'[')?;
        let host = self.string()?;
        self.skip_ws();
        self.punct(b',')?;
        let port = self.port()?;
        self.skip_ws();
        self.punct(b']')?;
        self.punct(b',')?;
        let id = self.string()?;
        self.skip_ws();
        self.eat(b']')?;
        Some(PeerEntry { host: host.to_owned(), port, id: id.to_owned() })
    }

    /// A string of printable ASCII with no escape (what it reads is
    /// then exactly its text).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match *self.text.get(self.at)? {
                b'"' => break,
                b'\\' => return None,
                b' '..=b'~' => self.at += 1,
                _ => return None,
            }
        }
        let text: &'a [u8] = self.text;
        let s = std::str::from_utf8(&text[start..self.at]).ok()?;
        self.at += 1;
        Some(s)
    }

    /// A JSON integer (no sign, no leading zero) within a port's range; a
    /// fraction or exponent leaves the shape (the next token is not one
    /// the caller expects).
    fn port(&mut self) -> Option<u16> {
        let start = self.at;
        while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = &self.text[start..self.at];
        // JSON writes no leading zero; "0" alone is zero. More than five
        // digits cannot be a port (the general reader then skips the
        // entry, or rejects a leading zero: left to it either way).
        if digits.is_empty() || digits.len() > 5 || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        let value = digits.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
        u16::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::pyjson::{parse_peers, parse_peers_tree, peers_json};
    use super::*;

    /// Limits that exercise the refusal of long lists around these inputs' lengths.
    const LIMITS: [usize; 4] = [0, 1, 2, 100];

    /// `parse_peers` (fast path, else tree) and the tree alone agree.
    fn agrees(text: &[u8]) {
        for limit in LIMITS {
            assert_eq!(
                parse_peers(text, limit),
                parse_peers_tree(text, limit),
                "{:?} limit {limit}",
                String::from_utf8_lossy(text)
            );
        }
    }

    fn entry(host: &str, port: u16, id: &str) -> PeerEntry {
        PeerEntry { host: host.into(), port, id: id.into() }
    }

    #[test]
    fn the_usual_shape_is_read_without_the_tree() {
        let list = vec![
            entry("10.0.0.1", 4444, "2b3c"),
            entry("::1", 0, "x"),
            entry("h", 65535, ""),
            entry("", 1, "id with spaces ~!"),
        ];
        let text = peers_json(&list);
        assert_eq!(parse(text.as_bytes(), 100), Some(Ok(list.clone())));
        assert_eq!(parse(text.as_bytes(), 3), Some(Err(PeerListError::TooLong { count: 4, limit: 3 })));
        assert_eq!(parse(b"[]", 0), Some(Ok(Vec::new())));
        assert_eq!(parse(b" \t\r\n[ \n[ [ \"h\" , 7 ] , \"i\" ] ] \n", 1), Some(Ok(vec![entry("h", 7, "i")])));
        agrees(text.as_bytes());
    }

    #[test]
    fn other_shapes_are_left_to_the_tree() {
        for text in [
            &br#"[[["h\u0041", 1], "a"]]"#[..],
            br#"[[["h", 70000], "a"]]"#,
            br#"[[["h", 1.0], "a"]]"#,
            br#"[[["h", 1], "a"], 5]"#,
            "[[[\"h\u{e9}\", 1], \"a\"]]".as_bytes(),
        ] {
            assert_eq!(parse(text, 100), None, "{:?}", String::from_utf8_lossy(text));
            agrees(text);
        }
    }

    #[test]
    fn valid_and_malformed_inputs_agree_with_the_tree() {
        let cases: &[&[u8]] = &[
            b"",
            b" ",
            b"[",
            b"]",
            b"[]",
            b"[] ",
            b"[]x",
            b"[],",
            b"[[]]",
            b"{}",
            b"\"x\"",
            b"null",
            b"5",
            br#"[[["h", 1], "a"],]"#,
            br#"[,[["h", 1], "a"]]"#,
            br#"[[["h", 1], "a"] [["h", 2], "b"]]"#,
            br#"[[["h", 01], "a"]]"#,
            br#"[[["h", 0], "a"]]"#,
            br#"[[["h", -1], "a"]]"#,
            br#"[[["h", -0], "a"]]"#,
            br#"[[["h", 1e2], "a"]]"#,
            br#"[[["h", 1E2], "a"]]"#,
            br#"[[["h", 1.5], "a"]]"#,
            br#"[[["h", 65535], "a"]]"#,
            br#"[[["h", 65536], "a"]]"#,
            br#"[[["h", 123456], "a"]]"#,
            br#"[[["h", 18446744073709551616], "a"]]"#,
            br#"[[["h", 1e400], "a"]]"#,
            br#"[[["h", 1], "a", 3]]"#,
            br#"[[["h", 1]]]"#,
            br#"[[["h"], "a"]]"#,
            br#"[[["h", 1, 2], "a"]]"#,
            br#"[[[1, 1], "a"]]"#,
            br#"[[["h", "1"], "a"]]"#,
            br#"[[["h", 1], 5]]"#,
            br#"[[["h", 1], null]]"#,
            br#"[{"h": 1}]"#,
            br#"[[["h", 1], "a"]"#,
            br#"[[["h", 1], "a"]]]"#,
            br#"[[["h", 1], "a"]] [1]"#,
            br#"[[["h\"", 1], "a"]]"#,
            br#"[[["h\\", 1], "a"]]"#,
            br#"[[["h\ud800", 1], "a"]]"#,
            br#"[[["h\ud83d\ude00", 1], "a"]]"#,
            br#"[[["h\x", 1], "a"]]"#,
            b"[[[\"h\x01\", 1], \"a\"]]",
            b"[[[\"h\x7f\", 1], \"a\"]]",
            b"[[[\"h\xff\", 1], \"a\"]]",
            b"[[[\"h\", 1], \"a\xc3\"]]",
            b"[[[\"h\", 1], \"a\"]]\x00",
            b"\xef\xbb\xbf[]",
            b"[\x0c]",
            br#"[[["h", 1], "a"], [["i", 2], "b"], [["j", 3], "c"]]"#,
            br#"[[["h", 1], "a"], [["i", 70000], "b"], [["j", 3], "c"]]"#,
        ];
        for text in cases {
            agrees(text);
        }
    }

    /// Deterministic mutations of well-formed lists (a byte dropped,
    /// replaced or inserted, the text cut) all get the tree's answer.
    #[test]
    fn mutated_lists_agree_with_the_tree() {
        let bases = [
            peers_json(&[entry("10.0.0.1", 4444, "2b3c"), entry("10.0.0.2", 80, "QmX")]),
            peers_json(&[entry("::1", 65535, "z")]),
            "[ [ [ \"a\" , 0 ] , \"b\" ] ]".to_owned(),
        ];
        // Bytes that matter to JSON's grammar, and a few that do not.
        let alphabet = b"[]{},:\"\\ \t\n0159-+.eEaunl\x01\x7f\xc3";
        for base in &bases {
            let base = base.as_bytes();
            for i in 0..=base.len() {
                agrees(&base[..i]);
                if i < base.len() {
                    let mut dropped = base.to_vec();
                    dropped.remove(i);
                    agrees(&dropped);
                }
                for &b in alphabet {
                    let mut inserted = base.to_vec();
                    inserted.insert(i, b);
                    agrees(&inserted);
                    if i < base.len() {
                        let mut replaced = base.to_vec();
                        replaced[i] = b;
                        agrees(&replaced);
                    }
                }
            }
        }
    }
}
