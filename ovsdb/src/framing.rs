//! Splitting a raw byte stream into JSON values.
//!
//! OVSDB (RFC 7047 §4) sends JSON-RPC messages as concatenated JSON objects with no length
//! prefix and no delimiter. [`Framer`] finds where each object ends by scanning bytes for
//! balanced braces and brackets while honouring strings and escapes, and only then hands the
//! complete slice to `serde_json`: a check-then-parse split that tells "incomplete" from
//! "invalid". The scan state survives between reads, so a multi-megabyte reply arriving in
//! 64 KiB pieces is scanned once, not once per piece.

use crate::error::{Error, Result};

/// Default cap on the size of one JSON value (a 2000-port transaction reply is a few MB).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 256 * 1024 * 1024;

/// `serde_json` refuses values nested deeper than this, so reject them while scanning.
const MAX_DEPTH: usize = 128;

/// Buffered scanner for a stream of concatenated JSON objects.
///
/// Feed bytes with [`extend`](Self::extend), take complete values with
/// [`next_value`](Self::next_value). After an error the stream cannot be resynchronised: every
/// later call returns the same error.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Index in `buf` of the first byte not yet handed out.
    start: usize,
    /// Index in `buf` of the next byte to scan.
    scan: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Open `{` / `[` of the value being scanned; empty between values.
    stack: Vec<u8>,
    in_string: bool,
    escape: bool,
    max_len: usize,
    failed: Option<(u64, String)>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_LEN)
    }
}

impl Framer {
    /// A framer that rejects single values longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            base: 0,
            stack: Vec::new(),
            in_string: false,
            escape: false,
            max_len,
            failed: None,
        }
    }

    /// Append bytes read from the stream.
    pub fn extend(&mut self, data: &[u8]) {
        // Drop consumed bytes before growing, but only when that moves little data relative
        // to what was consumed, so the cost stays linear in the stream length.
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Whether a value has started but not ended (bytes other than whitespace are pending).
    pub fn has_partial(&self) -> bool {
        self.buf[self.start..]
            .iter()
            .any(|b| !b.is_ascii_whitespace())
    }

    /// Stream offset of the next byte to be scanned.
    pub fn offset(&self) -> u64 {
        self.base + self.scan as u64
    }

    /// Check phase: `Ok(Some(range))` when a complete value sits at `range` of the buffer,
    /// `Ok(None)` when more bytes are needed, `Err` when the bytes can never form a value.
    fn check(&mut self) -> Result<Option<std::ops::Range<usize>>> {
        if let Some((offset, reason)) = &self.failed {
            return Err(Error::Framing {
                offset: *offset,
                reason: reason.clone(),
            });
        }
        while self.scan < self.buf.len() {
            let i = self.scan;
            let b = self.buf[i];
            self.scan += 1;
            if self.stack.is_empty() {
                if b.is_ascii_whitespace() {
                    self.start = self.scan;
                    continue;
                }
                if b != b'{' {
                    return Err(self.fail(
                        i,
                        format!("expected '{{' to start a message, found {}", show(b)),
                    ));
                }
                self.start = i;
                self.stack.push(b);
                continue;
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(self.fail(i, format!("nesting deeper than {MAX_DEPTH}")));
                    }
                    self.stack.push(b);
                }
                b'}' | b']' => {
                    let open = self.stack.pop().unwrap_or_default();
                    if (open == b'{') != (b == b'}') {
                        return Err(self.fail(i, format!("{} closes {}", show(b), show(open))));
                    }
                    if self.stack.is_empty() {
                        return Ok(Some(self.start..self.scan));
                    }
                }
                _ => {}
            }
        }
        if !self.stack.is_empty() && self.scan - self.start > self.max_len {
            let offset = self.base + self.start as u64;
            let error = Error::MessageTooLarge {
                offset,
                limit: self.max_len,
            };
            self.failed = Some((offset, error.to_string()));
            return Err(error);
        }
        Ok(None)
    }

    fn fail(&mut self, index: usize, reason: String) -> Error {
        let offset = self.base + index as u64;
        self.failed = Some((offset, reason.clone()));
        Error::Framing { offset, reason }
    }

    /// The next complete JSON object, `Ok(None)` if more bytes are needed.
    pub fn next_value(&mut self) -> Result<Option<serde_json::Value>> {
        let Some(range) = self.check()? else {
            return Ok(None);
        };
        let slice = &self.buf[range.clone()];
        let parsed = serde_json::from_slice(slice);
        match parsed {
            Ok(value) => {
                self.start = range.end;
                Ok(Some(value))
            }
            Err(e) => {
                let at = range.start + offset_in(slice, e.line(), e.column());
                Err(self.fail(at, e.to_string()))
            }
        }
    }
}

/// Byte offset of a serde_json (1-based line, 1-based column) position.
fn offset_in(slice: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        slice
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(slice.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(slice.len().saturating_sub(1))
}

fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn drain(f: &mut Framer) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        while let Some(v) = f.next_value()? {
            out.push(v);
        }
        Ok(out)
    }

    const SAMPLE: &str = concat!(
        r#"{"id":1,"result":[{"uuid":["uuid","2e5e4b4b-0b85-4c22-b4d5-4c5e3d1e0f00"]}],"error":null}"#,
        "\n",
        r#"{"id":"echo","method":"echo","params":["a}\"]{\\"]}"#,
        r#"  {"method":"update2","params":["m",{"T":{"u":{"modify":{"c":["set",[]]}}}}],"id":null}"#,
        "\r\n\t ",
    );

    fn sample_values() -> Vec<serde_json::Value> {
        serde_json::Deserializer::from_str(SAMPLE)
            .into_iter()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn every_split_point_yields_the_same_values() {
        let expected = sample_values();
        assert_eq!(expected.len(), 3);
        let bytes = SAMPLE.as_bytes();
        for split in 0..=bytes.len() {
            let mut f = Framer::default();
            f.extend(&bytes[..split]);
            let mut got = drain(&mut f).unwrap();
            f.extend(&bytes[split..]);
            got.extend(drain(&mut f).unwrap());
            assert_eq!(got, expected, "split at {split}");
            assert!(!f.has_partial());
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut f = Framer::default();
        let mut got = Vec::new();
        for b in SAMPLE.as_bytes() {
            f.extend(std::slice::from_ref(b));
            got.extend(drain(&mut f).unwrap());
        }
        assert_eq!(got, sample_values());
    }

    #[test]
    fn many_messages_in_one_read() {
        let mut stream = String::new();
        for i in 0..1000 {
            stream.push_str(&json!({"id": i, "result": {"s": "}{]["}, "error": null}).to_string());
        }
        let mut f = Framer::default();
        f.extend(stream.as_bytes());
        let got = drain(&mut f).unwrap();
        assert_eq!(got.len(), 1000);
        assert_eq!(got[999]["id"], 999);
    }

    #[test]
    fn five_megabyte_message_in_small_reads() {
        let rows: Vec<_> = (0..100_000)
            .map(|i| json!({"name": format!("port{i}"), "ofport": i, "error": ["set", []]}))
            .collect();
        let msg = json!({"id": 7, "result": [{"rows": rows}], "error": null}).to_string();
        assert!(msg.len() > 5_000_000, "{}", msg.len());
        let big = format!("{msg}{msg}{{\"id\":8}}");
        let mut f = Framer::default();
        let mut got = Vec::new();
        for chunk in big.as_bytes().chunks(65536) {
            f.extend(chunk);
            got.extend(drain(&mut f).unwrap());
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[1]["result"][0]["rows"][99_999]["name"], "port99999");
        assert_eq!(got[2]["id"], 8);
        // Consumed bytes were released rather than kept for the whole stream.
        assert!(f.buf.len() < big.len());
    }

    #[test]
    fn garbage_before_a_message_names_the_offset() {
        let mut f = Framer::default();
        f.extend(b"{\"id\":1}  xyz");
        assert_eq!(f.next_value().unwrap().unwrap(), json!({"id": 1}));
        let err = f.next_value().unwrap_err();
        assert!(matches!(err, Error::Framing { offset: 10, .. }), "{err}");
        assert!(err.to_string().contains("byte offset 10"), "{err}");
        // Stays failed.
        assert!(f.next_value().is_err());
    }

    #[test]
    fn invalid_json_inside_balanced_braces_names_the_offset() {
        let mut f = Framer::default();
        f.extend(b"{\"id\":1}{\"id\":\n tru}");
        assert!(f.next_value().unwrap().is_some());
        let err = f.next_value().unwrap_err();
        let Error::Framing { offset, .. } = err else {
            panic!("{err}")
        };
        assert!((8..=20).contains(&offset), "offset {offset}");
    }

    #[test]
    fn mismatched_brackets_and_top_level_arrays_are_invalid() {
        for (input, offset) in [(&b"{]"[..], 1), (b"[1]", 0), (b"{\"a\":[}", 6)] {
            let mut f = Framer::default();
            f.extend(input);
            match f.next_value() {
                Err(Error::Framing { offset: o, .. }) => assert_eq!(o, offset),
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn incomplete_is_not_an_error() {
        let mut f = Framer::default();
        f.extend(b"  {\"a\":\"\\\"}");
        assert!(f.next_value().unwrap().is_none());
        assert!(f.has_partial());
        f.extend(b"\"}");
        assert_eq!(f.next_value().unwrap().unwrap(), json!({"a": "\"}"}));
    }

    #[test]
    fn oversized_and_too_deep_values_are_rejected() {
        let mut f = Framer::new(16);
        f.extend(b"{\"a\":\"0123456789abcdef");
        assert!(matches!(
            f.next_value(),
            Err(Error::MessageTooLarge {
                offset: 0,
                limit: 16
            })
        ));

        let mut f = Framer::default();
        f.extend(b"{\"a\":");
        f.extend(&[b'['; 200]);
        assert!(matches!(f.next_value(), Err(Error::Framing { .. })));
    }
}
