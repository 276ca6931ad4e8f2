//! bytes → parse → emit → parse: decoding never panics, and whatever decodes re-encodes to
//! bytes that decode to the same message, with `emit` writing exactly `buffer_len()` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ovswire_openflow::Frame;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::parse(data) else { return };
    let len = frame.buffer_len();
    let bytes = frame.to_vec().expect("a decoded message re-encodes within 65535 bytes");
    assert_eq!(bytes.len(), len);
    let again = Frame::parse(&bytes).expect("re-encoded bytes decode");
    assert_eq!(again, frame);
});
