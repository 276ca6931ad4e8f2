//! Arbitrary bytes, in arbitrary chunks, through the framer and the JSON-RPC decoder: no
//! panics; chunking never changes the outcome; whatever decodes re-serializes and re-parses
//! to the same thing.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ovswire_ovsdb::{ProbeConfig, Row, Value, framing::Framer, rpc::Message, session::Session};
use serde_json::Value as Json;

/// All values the framer yields, then its error (if any).
fn frame(chunks: impl Iterator<Item = Vec<u8>>) -> (Vec<Json>, Option<String>) {
    let mut framer = Framer::new(1 << 20);
    let mut values = Vec::new();
    for chunk in chunks {
        framer.extend(&chunk);
        loop {
            match framer.next_value() {
                Ok(Some(v)) => values.push(v),
                Ok(None) => break,
                Err(e) => return (values, Some(e.to_string())),
            }
        }
    }
    (values, None)
}

/// Every sub-value that parses as an OVSDB value or row must survive a round trip.
fn check_data_model(json: &Json) {
    if let Ok(v) = Value::from_json(json) {
        let again = Value::from_json(&v.to_json()).expect("re-parse value");
        assert_eq!(again, v);
    }
    if let Ok(r) = Row::from_json(json) {
        assert_eq!(Row::from_json(&r.to_json()).expect("re-parse row"), r);
    }
    match json {
        Json::Array(a) => a.iter().for_each(check_data_model),
        Json::Object(o) => o.values().for_each(check_data_model),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // The first bytes choose chunk sizes (1..=64, cycled); the rest is the stream.
    let (sizes, stream) = data.split_at(data.len().min(4));
    let sizes: Vec<usize> = sizes.iter().map(|b| usize::from(b % 64) + 1).collect();

    let whole = frame(std::iter::once(stream.to_vec()));
    let mut rest = stream;
    let mut i = 0;
    let chunked = frame(std::iter::from_fn(|| {
        if rest.is_empty() {
            return None;
        }
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .min(rest.len());
        i += 1;
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head.to_vec())
    }));
    assert_eq!(whole, chunked, "chunking changed the outcome");

    let now = Instant::now();
    let mut session = Session::new(ProbeConfig::default(), now);
    for value in whole.0 {
        // Re-serialized, the value frames back to itself.
        let bytes = serde_json::to_vec(&value).expect("serialize");
        let (again, err) = frame(std::iter::once(bytes));
        assert_eq!(
            (again.as_slice(), err),
            (std::slice::from_ref(&value), None)
        );

        check_data_model(&value);
        if let Ok(msg) = Message::from_json(value) {
            assert_eq!(
                Message::from_json(msg.to_json()).expect("re-parse message"),
                msg
            );
            let _ = session.handle_message(msg, now);
            while session.poll_transmit().is_some() {}
            while session.poll_event().is_some() {}
        }
    }
});
