//! A hostile peer's responses to a catch-up session: the input is split into messages (each a
//! big-endian u16 length and the bytes); each that decodes as a response is given to the
//! session, which must never panic, and must end (finished or failed) within the messages.
#![no_main]

use agora_crdt::{EntryId, SubwikiId, Timestamp};
use agora_node::proto::{Config, Output, Response, Session, Snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let items = Snapshot::new((0..50u64).map(|i| {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&i.wrapping_mul(0x2545_f491_4f6c_dd1d).to_be_bytes());
        (
            Timestamp(1_700_000_000_000 + i * 1_000),
            EntryId::from_bytes(id),
        )
    }));
    let subwiki = SubwikiId::from_bytes([9; 32]);
    let Ok((mut session, _first)) = Session::start(subwiki, items, Config::default()) else {
        return;
    };
    let mut rest = bytes;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let end = (2 + len).min(rest.len());
        let message = &rest[2..end];
        rest = &rest[end..];
        let Ok(response) = Response::decode(message) else {
            continue;
        };
        let outputs = match session.handle(response, Timestamp(1_800_000_000_000)) {
            Ok(outputs) => outputs,
            Err(_) => return,
        };
        for output in outputs {
            if let Output::NeedEntries(_) = output {
                if session.provide(Vec::new()).is_err() {
                    return;
                }
            }
        }
        if session.is_finished() {
            return;
        }
    }
});
