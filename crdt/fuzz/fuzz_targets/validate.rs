//! Arbitrary bytes as one entry: `validate`, and for a valid entry, ingestion and every view.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: agora_crdt_fuzz::init(),
    |data: &[u8]| {
        agora_crdt_fuzz::guard(|| {
            let _ = agora_crdt_fuzz::harness::run_validate(data);
        });
    }
);
