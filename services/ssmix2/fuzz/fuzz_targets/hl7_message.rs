//! Any bytes: decoding never panics, and whatever decodes re-encodes to the same text (up to the
//! documented half-width katakana normalisation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssmix2::hl7::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let _ = msg.value("PID-5[2].1");
        let _ = msg.message_type();
        if let Ok(again) = msg.encode() {
            let reparsed = Message::decode(&again).expect("our own encoding decodes");
            assert_eq!(reparsed.to_text(), ssmix2::hl7::normalize_halfwidth_katakana(&msg.to_text()));
        }
    }
});
