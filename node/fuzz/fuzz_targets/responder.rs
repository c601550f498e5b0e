//! A hostile peer's requests to the responder: any bytes that decode as a request are answered
//! against a subwiki of 300 items (some of them loadable), without a panic; the answer encodes
//! within the message limit.
#![no_main]

use std::sync::OnceLock;

use agora_crdt::{EntryId, Timestamp};
use agora_node::proto::{Config, MAX_MESSAGE_BYTES, Request, Responder, Snapshot};
use libfuzzer_sys::fuzz_target;

fn items() -> &'static Snapshot {
    static ITEMS: OnceLock<Snapshot> = OnceLock::new();
    ITEMS.get_or_init(|| {
        Snapshot::new((0..300u64).map(|i| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            (
                Timestamp(1_700_000_000_000 + i * 1_000),
                EntryId::from_bytes(id),
            )
        }))
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = Request::decode(bytes) else {
        return;
    };
    let Ok(responder) = Responder::new(Config::default()) else {
        return;
    };
    // Every third id loads as a few bytes (not an entry: the responder sends what the store
    // gives; its peer checks it).
    let load = |id: &EntryId| (id.as_bytes()[0] % 3 == 0).then(|| id.as_bytes().to_vec());
    let reply = responder.handle(request, Some(items()), load, Timestamp(1_800_000_000_000));
    assert!(reply.response.encode().len() <= MAX_MESSAGE_BYTES);
});
