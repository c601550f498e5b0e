//! A flags byte and `u16`-length-prefixed entries: each validated, the valid ones ingested into
//! two replicas in different orders, which must converge; then every view and local edits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: agora_crdt_fuzz::init(),
    |data: &[u8]| {
        agora_crdt_fuzz::guard(|| {
            let _ = agora_crdt_fuzz::harness::run_replica(data);
        });
    }
);
