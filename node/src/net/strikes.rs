//! Strikes against peers that send invalid data, and the block list they lead to, both
//! bounded and forgetting: a peer that sent garbage once (a bug, a version mismatch, a restart
//! in the middle of a write) is not cut off for ever, and a flood of peer ids cannot grow
//! either table.
//!
//! - A peer gets one strike per invalid entry or protocol error; strikes decay, one every
//!   [`DECAY`], so only a peer that keeps sending garbage reaches [`MAX_STRIKES`].
//! - At [`MAX_STRIKES`] the peer is blocked for [`BLOCK_FOR`]; a peer blocked again within
//!   that time after its block ended is blocked twice as long, up to [`MAX_BLOCK`].
//! - At most [`MAX_TRACKED`] peers have strikes and [`MAX_BLOCKED`] are blocked; past that, the
//!   peer with the fewest strikes (or the block that ends first) makes room.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Strikes that block a peer.
pub(crate) const MAX_STRIKES: u32 = 8;
/// One strike is forgiven after this long.
pub(crate) const DECAY: Duration = Duration::from_secs(60);
/// How long a first block lasts.
pub(crate) const BLOCK_FOR: Duration = Duration::from_secs(15 * 60);
/// The longest block.
pub(crate) const MAX_BLOCK: Duration = Duration::from_secs(24 * 60 * 60);
/// Peers with strikes kept at most.
pub(crate) const MAX_TRACKED: usize = 4096;
/// Peers blocked at most.
pub(crate) const MAX_BLOCKED: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Record {
    strikes: u32,
    /// When `strikes` was last brought up to date (decay is counted from here).
    at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    until: Instant,
    /// How long this block lasts: the next one, if it comes soon, lasts twice as long.
    length: Duration,
}

/// What a strike did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Counted; the peer may go on.
    Counted(u32),
    /// The peer is blocked now, for this long.
    Blocked(Duration),
}

/// The strikes and blocks of one node.
#[derive(Debug, Default)]
pub(crate) struct Strikes {
    records: HashMap<PeerId, Record>,
    blocked: HashMap<PeerId, Block>,
    /// Blocks that ended, with their length, for the doubling (forgotten after a while).
    ended: HashMap<PeerId, (Instant, Duration)>,
    /// Blocks dropped to make room, to lift in the swarm at the next [`Strikes::expire`].
    evicted: Vec<PeerId>,
}

impl Strikes {
    /// Counts `count` strikes against `peer` at `now`.
    pub(crate) fn strike(&mut self, peer: PeerId, count: u32, now: Instant) -> Verdict {
        if let Some(block) = self.blocked.get(&peer) {
            return Verdict::Blocked(block.until.saturating_duration_since(now));
        }
        if !self.records.contains_key(&peer) && self.records.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let record = self.records.entry(peer).or_insert(Record {
            strikes: 0,
            at: now,
        });
        decay(record, now);
        record.strikes = record.strikes.saturating_add(count);
        if record.strikes < MAX_STRIKES {
            return Verdict::Counted(record.strikes);
        }
        self.records.remove(&peer);
        let length = match self.ended.remove(&peer) {
            Some((ended, last)) if now.saturating_duration_since(ended) < last => {
                last.saturating_mul(2).min(MAX_BLOCK)
            }
            _ => BLOCK_FOR,
        };
        if self.blocked.len() >= MAX_BLOCKED
            && let Some(first) = self
                .blocked
                .iter()
                .min_by_key(|(_, b)| b.until)
                .map(|(p, _)| *p)
        {
            self.blocked.remove(&first);
            self.evicted.push(first);
        }
        self.blocked.insert(
            peer,
            Block {
                until: now + length,
                length,
            },
        );
        Verdict::Blocked(length)
    }

    /// Whether the peer is blocked at `now`.
    pub(crate) fn is_blocked(&self, peer: &PeerId, now: Instant) -> bool {
        self.blocked.get(peer).is_some_and(|b| b.until > now)
    }

    /// Ends the blocks that are over and forgets strikes that decayed to nothing; returns the
    /// peers no longer blocked (to unblock in the swarm). Also forgets ended blocks older than
    /// their length. Blocks dropped to make room are returned too.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let mut over: Vec<PeerId> = self
            .blocked
            .iter()
            .filter(|(_, b)| b.until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in &over {
            if let Some(block) = self.blocked.remove(peer) {
                self.ended.insert(*peer, (now, block.length));
            }
        }
        over.append(&mut self.evicted);
        self.records.retain(|_, r| {
            decay(r, now);
            r.strikes > 0
        });
        self.ended
            .retain(|_, (ended, length)| now.saturating_duration_since(*ended) < *length);
        if self.ended.len() > MAX_BLOCKED {
            self.ended.clear();
        }
        over
    }

    /// Drops the tracked peer with the fewest strikes.
    fn make_room(&mut self, now: Instant) {
        let least = self
            .records
            .iter_mut()
            .map(|(p, r)| {
                decay(r, now);
                (*p, r.strikes)
            })
            .min_by_key(|(_, s)| *s)
            .map(|(p, _)| p);
        if let Some(peer) = least {
            self.records.remove(&peer);
        }
    }
}

/// Forgives the strikes due since the record was last brought up to date.
fn decay(record: &mut Record, now: Instant) {
    let elapsed = now.saturating_duration_since(record.at);
    let forgiven = u32::try_from(elapsed.as_secs() / DECAY.as_secs()).unwrap_or(u32::MAX);
    if forgiven > 0 {
        record.strikes = record.strikes.saturating_sub(forgiven);
        record.at += DECAY.saturating_mul(forgiven.min(1 << 20));
        if record.strikes == 0 {
            record.at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn strikes_decay_so_an_occasional_bad_entry_never_blocks() {
        let mut s = Strikes::default();
        let peer = PeerId::random();
        let mut now = Instant::now();
        // One bad entry a minute, for a day: never blocked.
        for _ in 0..(24 * 60) {
            assert!(matches!(s.strike(peer, 1, now), Verdict::Counted(_)));
            now += DECAY;
        }
        // A burst is blocked at once.
        assert_eq!(
            s.strike(peer, MAX_STRIKES, now),
            Verdict::Blocked(BLOCK_FOR)
        );
        assert!(s.is_blocked(&peer, now));
    }

    #[test]
    fn a_block_ends_and_a_repeat_offender_is_blocked_longer() {
        let mut s = Strikes::default();
        let peer = PeerId::random();
        let mut now = Instant::now();
        assert_eq!(s.strike(peer, 8, now), Verdict::Blocked(BLOCK_FOR));
        now += BLOCK_FOR - Duration::from_secs(1);
        assert!(s.expire(now).is_empty());
        assert!(s.is_blocked(&peer, now));
        now += Duration::from_secs(1);
        assert_eq!(s.expire(now), vec![peer]);
        assert!(!s.is_blocked(&peer, now));
        // Garbage again soon after: twice as long.
        now += Duration::from_secs(60);
        assert_eq!(s.strike(peer, 8, now), Verdict::Blocked(BLOCK_FOR * 2));
        now += BLOCK_FOR * 2;
        assert_eq!(s.expire(now), vec![peer]);
        // Much later, a first offence again.
        now += MAX_BLOCK;
        s.expire(now);
        assert_eq!(s.strike(peer, 8, now), Verdict::Blocked(BLOCK_FOR));
    }

    #[test]
    fn the_tables_are_bounded() {
        let mut s = Strikes::default();
        let now = Instant::now();
        for _ in 0..(MAX_TRACKED + 100) {
            s.strike(PeerId::random(), 1, now);
        }
        assert!(s.records.len() <= MAX_TRACKED);
        for _ in 0..(MAX_BLOCKED + 100) {
            s.strike(PeerId::random(), MAX_STRIKES, now);
        }
        assert!(s.blocked.len() <= MAX_BLOCKED);
        // The blocks dropped to make room are lifted in the swarm at the next look.
        assert_eq!(s.expire(now).len(), 100);
        // Decayed strikes are forgotten.
        s.expire(now + DECAY);
        assert!(s.records.is_empty());
    }
}
