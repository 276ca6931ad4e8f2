//! Byte-level helpers and the one place that knows TLV headers and 8-byte padding.

use crate::{Error, Result};

/// Rounds `len` up to the next multiple of 8, the alignment of every OpenFlow structure.
pub(crate) const fn pad8(len: usize) -> usize {
    (len + 7) & !7
}

/// Fails unless `buf` holds at least `need` bytes.
pub(crate) const fn check_len(
    buf: &[u8],
    need: usize,
    what: &'static str,
    field: &'static str,
) -> Result<()> {
    if buf.len() < need {
        Err(Error::truncated(what, field, need, buf.len()))
    } else {
        Ok(())
    }
}

// Readers and writers index fixed ranges after `check_len` has proven them in bounds.
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

pub(crate) fn get_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut b = [0; N];
    b.copy_from_slice(&buf[at..at + N]);
    b
}

pub(crate) fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// A type/length/value item with a 4-byte `{type: u16, length: u16}` header whose whole
/// encoding is padded to 8 bytes: actions, instructions, HELLO elements, properties.
///
/// Implementors describe only their body; [`tlv_emit`] writes the header, the length and
/// the zero padding, so the 8-byte alignment rule lives here and nowhere else.
pub(crate) trait Tlv {
    /// Whether `length` counts the trailing padding (actions, instructions) or not
    /// (HELLO elements and OpenFlow 1.4 properties: "excluding padding").
    const LENGTH_INCLUDES_PADDING: bool;

    /// The `type` field.
    fn tlv_type(&self) -> u16;
    /// Bytes after the 4-byte header, before padding.
    fn body_len(&self) -> usize;
    /// Writes exactly `body_len()` bytes.
    fn emit_body(&self, buf: &mut [u8]);
}

/// Bytes a TLV occupies on the wire, padding included.
pub(crate) fn tlv_buffer_len<T: Tlv>(tlv: &T) -> usize {
    pad8(4 + tlv.body_len())
}

/// Writes a TLV (header, body, zero padding) into `buf[..tlv_buffer_len(tlv)]`.
pub(crate) fn tlv_emit<T: Tlv>(tlv: &T, buf: &mut [u8]) {
    let unpadded = 4 + tlv.body_len();
    let total = pad8(unpadded);
    let length = if T::LENGTH_INCLUDES_PADDING {
        total
    } else {
        unpadded
    };
    put_u16(buf, 0, tlv.tlv_type());
    put_u16(buf, 2, length as u16);
    tlv.emit_body(&mut buf[4..unpadded]);
    buf[unpadded..total].fill(0);
}

/// Splits the next TLV off `buf`: returns `(type, body, bytes consumed)`.
///
/// Enforces the spec's alignment rule for padded-length TLVs ("The length of an action
/// MUST always be a multiple of eight") and bounds every length by the buffer.
pub(crate) fn tlv_split<'a, T: Tlv>(
    buf: &'a [u8],
    what: &'static str,
) -> Result<(u16, &'a [u8], usize)> {
    check_len(buf, 4, what, "header")?;
    let kind = get_u16(buf, 0);
    let length = usize::from(get_u16(buf, 2));
    if length < 4 || (T::LENGTH_INCLUDES_PADDING && length % 8 != 0) {
        return Err(Error::bad_len(what, "length", 2, length));
    }
    // The padding after a length that excludes it must be there too ("padded to a multiple
    // of 8"), so a decoded item never re-encodes longer than it came in.
    let consumed = pad8(length);
    check_len(buf, consumed, what, "body")?;
    Ok((kind, &buf[4..length], consumed))
}

/// Parses a run of TLVs that fills `buf` exactly.
pub(crate) fn parse_tlvs<T: Tlv>(
    mut buf: &[u8],
    what: &'static str,
    parse_one: impl Fn(u16, &[u8]) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut offset = 0;
    while !buf.is_empty() {
        let (kind, body, consumed) = tlv_split::<T>(buf, what).map_err(|e| e.at(offset))?;
        out.push(parse_one(kind, body).map_err(|e| e.at(offset + 4))?);
        buf = &buf[consumed..];
        offset += consumed;
    }
    Ok(out)
}

/// Emits a run of TLVs back to back; returns the bytes written.
pub(crate) fn emit_tlvs<T: Tlv>(items: &[T], buf: &mut [u8]) -> usize {
    let mut at = 0;
    for item in items {
        let len = tlv_buffer_len(item);
        tlv_emit(item, &mut buf[at..at + len]);
        at += len;
    }
    at
}

/// Total bytes of a run of TLVs.
pub(crate) fn tlvs_len<T: Tlv>(items: &[T]) -> usize {
    items.iter().map(tlv_buffer_len).sum()
}

/// Reads a NUL-padded fixed-width string, stopping at the first NUL. Non-UTF-8 bytes are
/// refused rather than replaced, so a parsed string always emits back to the same bytes.
pub(crate) fn get_str(
    buf: &[u8],
    what: &'static str,
    field: &'static str,
    at: usize,
) -> Result<String> {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(Error::bad_value(
            what,
            field,
            at + e.valid_up_to(),
            u64::from(buf[e.valid_up_to()]),
        )),
    }
}

/// Writes `s` NUL-padded into `buf`, cut at a character boundary if it is too long.
pub(crate) fn put_str(buf: &mut [u8], s: &str) {
    let mut n = s.len().min(buf.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    buf[n..].fill(0);
}
