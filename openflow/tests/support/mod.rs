//! Shared checks for the byte-fixture tests.
#![allow(dead_code, unreachable_pub)]

use ovswire_openflow::Frame;

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// bytes → parse → emit → parse must give the same message, and `emit` must write
/// exactly `buffer_len()` bytes. Returns whether `bytes` decoded at all.
pub fn roundtrip(bytes: &[u8]) -> bool {
    let Ok(frame) = Frame::parse(bytes) else {
        return false;
    };
    let out = frame.to_vec().expect("a decoded message fits 65535 bytes");
    assert_eq!(out.len(), frame.buffer_len());
    let again =
        Frame::parse(&out).unwrap_or_else(|e| panic!("re-encoded {frame:?} does not decode: {e}"));
    assert_eq!(again, frame, "roundtrip changed the message");
    true
}

/// The fixture contract: `parse(raw) == expected`; emitting `expected` into a buffer
/// pre-filled with 0xa5 gives `raw` exactly; every truncation is an error (never a panic);
/// and random corruptions of `raw` either fail to decode or round-trip.
pub fn check(raw: &[u8], expected: &Frame) {
    let parsed = Frame::parse(raw).unwrap_or_else(|e| panic!("fixture does not decode: {e}"));
    assert_eq!(&parsed, expected);

    assert_eq!(expected.buffer_len(), raw.len(), "buffer_len");
    let mut buf = vec![0xa5; raw.len()];
    expected.emit(&mut buf);
    assert_eq!(buf, raw, "emit");

    for cut in 0..raw.len() {
        // Keep the header's length honest so the body parsers see the truncation.
        let mut short = raw[..cut].to_vec();
        if cut >= 4 {
            short[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
        }
        if Frame::parse(&short).is_ok() {
            roundtrip(&short);
        }
    }

    let mut rng = Rng::new(raw.len() as u64 * 7919);
    for _ in 0..2000 {
        let mut bytes = raw.to_vec();
        for _ in 0..=rng.below(4) {
            let at = 8 + rng.below(raw.len().saturating_sub(8).max(1));
            if at < bytes.len() {
                bytes[at] = rng.next() as u8;
            }
        }
        roundtrip(&bytes);
    }
}

/// Every strict prefix of a fixed-size message body must fail to decode.
pub fn truncations_fail(raw: &[u8]) {
    for cut in 8..raw.len() {
        let mut short = raw[..cut].to_vec();
        short[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
        assert!(
            Frame::parse(&short).is_err(),
            "prefix of {cut} bytes decoded"
        );
    }
    for cut in 0..8.min(raw.len()) {
        assert!(
            Frame::parse(&raw[..cut]).is_err(),
            "{cut} header bytes decoded"
        );
    }
}
