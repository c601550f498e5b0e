//! Records of fuzzer-chosen entry fields and Automerge change bytes, signed with fixed keys, so
//! that malformed but signed changes reach `Replica::ingest` and Automerge's change application.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: agora_crdt_fuzz::init(),
    |data: &[u8]| {
        agora_crdt_fuzz::guard(|| {
            let _ = agora_crdt_fuzz::harness::run_signed_changes(data);
        });
    }
);
