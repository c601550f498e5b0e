//! The Automerge baseline: Automerge's own per-document sync protocol (`automerge::sync`), run
//! for real on a sample of documents shaped like the run's (same number of changes per
//! document, changes as large as the run's entries), then scaled to each node's needs.
//!
//! A node using Automerge's protocol does not know which of a subwiki's documents changed, so
//! catching up with one peer costs one sync per document: the in-step cost for every document,
//! plus, for each document that lacks changes, the changes and the extra messages that find
//! them. Both costs are measured here, with a fresh [`sync::State`] on each side as after
//! connecting and the behind side sending first, until neither side has anything to send.
//! The figure is a floor for Automerge: one peer, no framing, no document ids on the wire.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, Change, ROOT};

use crate::SimError;
use crate::metrics::AutomergeCost;
use crate::rng::Rng;

/// Bytes of an Agora entry's envelope around its Automerge change (version, subwiki, author,
/// time, kind, signature): a change is this much smaller than the entry that carries it.
pub const ENVELOPE_BYTES: u32 = 150;

/// Runs Automerge's sync on `docs` sample documents of `changes` changes each, change sizes
/// drawn from `sizes` (entry sizes; the change is [`ENVELOPE_BYTES`] smaller).
pub fn measure(
    docs: u32,
    changes: u32,
    sizes: &[u32],
    rng: &mut Rng,
) -> Result<AutomergeCost, SimError> {
    let changes = changes.clamp(1, 50);
    let mut in_step = 0usize;
    let mut behind_extra = 0f64;
    for d in 0..docs {
        let mut actor = d.to_le_bytes().to_vec();
        actor.resize(16, 0xa5);
        let mut doc = Automerge::new().with_actor(ActorId::from(actor));
        for c in 0..changes {
            let size = sizes
                .get(rng.index(sizes.len()))
                .copied()
                .unwrap_or(500)
                .saturating_sub(ENVELOPE_BYTES)
                .max(16);
            let mut tx = doc.transaction();
            tx.put(ROOT, "body", text(size as usize, rng))
                .map_err(|e| SimError::Automerge(e.to_string()))?;
            tx.commit_with(CommitOptions::default().with_time(1_800_000_000 + i64::from(c)));
        }
        let all: Vec<Change> = doc.get_changes(&[]);
        let last = all.last().map(|c| c.raw_bytes().len()).unwrap_or_default();
        let mut behind = Automerge::new();
        behind
            .apply_changes(all.iter().take(all.len().saturating_sub(1)).cloned())
            .map_err(|e| SimError::Automerge(e.to_string()))?;
        let mut peer = doc.clone();
        in_step += sync_bytes(&mut doc.clone(), &mut peer)?;
        let behind_bytes = sync_bytes(&mut behind, &mut doc)?;
        behind_extra += behind_bytes as f64 - last as f64;
    }
    let n = f64::from(docs.max(1));
    Ok(AutomergeCost {
        in_step_bytes: in_step as f64 / n,
        behind_extra_bytes: (behind_extra / n - in_step as f64 / n).max(0.0),
        sample_docs: docs,
    })
}

/// Random printable text: Automerge deflates large changes in its sync messages, and repeated
/// filler would compress to nothing, while Agora sends entries as they were signed.
fn text(len: usize, rng: &mut Rng) -> String {
    (0..len)
        .map(|_| char::from(b' ' + rng.below(95) as u8))
        .collect()
}

/// Syncs `behind` with `peer` until neither has a message; returns the encoded bytes sent.
fn sync_bytes(behind: &mut Automerge, peer: &mut Automerge) -> Result<usize, SimError> {
    let mut behind_state = sync::State::new();
    let mut peer_state = sync::State::new();
    let mut bytes = 0usize;
    let mut behind_turn = true;
    let mut silent = 0;
    let mut messages = 0;
    while silent < 2 {
        let message = if behind_turn {
            behind.generate_sync_message(&mut behind_state)
        } else {
            peer.generate_sync_message(&mut peer_state)
        };
        behind_turn = !behind_turn;
        let Some(message) = message else {
            silent += 1;
            continue;
        };
        silent = 0;
        let encoded = message.encode();
        bytes += encoded.len();
        messages += 1;
        if messages > 100 {
            return Err(SimError::Automerge("sync does not settle".into()));
        }
        let message =
            sync::Message::decode(&encoded).map_err(|e| SimError::Automerge(e.to_string()))?;
        let result = if behind_turn {
            behind.receive_sync_message(&mut behind_state, message)
        } else {
            peer.receive_sync_message(&mut peer_state, message)
        };
        result.map_err(|e| SimError::Automerge(e.to_string()))?;
    }
    let (mut a, mut b) = (behind.get_heads(), peer.get_heads());
    a.sort();
    b.sort();
    if a != b {
        return Err(SimError::Automerge("sync left the documents apart".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_positive_costs() {
        let mut rng = Rng::new(3);
        let cost = measure(4, 5, &[600, 900], &mut rng).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(cost.in_step_bytes > 0.0);
        assert!(cost.behind_extra_bytes > 0.0);
    }
}
