//! The fuzz target's property on pseudo-random input, so CI exercises it without nightly:
//! decoding never panics, and whatever decodes re-encodes to the same message.

mod support;

use support::{Rng, roundtrip};

#[test]
fn random_bytes_never_panic_and_round_trip() {
    let mut rng = Rng::new(0x5eed);
    let mut decoded = 0;
    for i in 0..20_000 {
        let len = 8 + rng.below(200);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Mostly well-formed headers, so the body decoders are reached.
        if i % 4 != 0 {
            bytes[0] = 0x04;
            bytes[1] = (rng.below(36)) as u8;
            bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        if roundtrip(&bytes) {
            decoded += 1;
        }
    }
    assert!(decoded > 1000, "only {decoded} random messages decoded");
}

#[test]
fn random_structured_bodies_round_trip() {
    // OXM-, action- and instruction-shaped noise inside a FLOW_MOD.
    let mut rng = Rng::new(42);
    for _ in 0..20_000 {
        let mut body = vec![0u8; 40];
        body[16] = rng.next() as u8;
        body[17] = rng.below(6) as u8;
        let n_fields = rng.below(4);
        let mut fields = Vec::new();
        for _ in 0..n_fields {
            let field = rng.below(40) as u8;
            let len = [1, 2, 4, 6, 8, 12, 16, 32][rng.below(8)];
            fields.extend_from_slice(&[0x80, 0x00, (field << 1) | (rng.below(2) as u8), len]);
            fields.extend((0..len).map(|_| rng.next() as u8));
        }
        let mlen = 4 + fields.len();
        body.extend_from_slice(&[0, 1]);
        body.extend_from_slice(&(mlen as u16).to_be_bytes());
        body.extend_from_slice(&fields);
        body.resize(40 + mlen.div_ceil(8) * 8, 0);
        let n_inst = rng.below(3);
        for _ in 0..n_inst {
            let kind = rng.below(8) as u8;
            let len = 8 * (1 + rng.below(4));
            body.extend_from_slice(&[0, kind]);
            body.extend_from_slice(&(len as u16).to_be_bytes());
            body.extend((4..len).map(|_| rng.next() as u8));
        }
        let mut raw = vec![0x04, 14];
        raw.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        raw.extend_from_slice(&[0, 0, 0, 1]);
        raw.extend_from_slice(&body);
        roundtrip(&raw);
    }
}
