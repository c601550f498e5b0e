//! The address book: peers this node met, with the addresses they listen on and when they
//! were last connected, kept in `<home>/peers.json` so that a node restarted without
//! `--bootstrap` and without mDNS (a laptop that slept, then woke on another network) finds
//! its peers again by itself.
//!
//! Each peer is noted with the joined subwikis it shares (it subscribed to their topics), so that
//! a restart dials, for each joined subwiki, the peer of that subwiki seen last before filling up
//! with the most recently seen others: a node in a small subwiki finds that subwiki's peers again
//! even when it met many more peers elsewhere.
//!
//! Bounded: at most [`MAX_PEERS`] peers (the least recently seen go first), [`MAX_ADDRS`]
//! addresses each (the newest kept) and [`MAX_SUBWIKIS`] subwikis each. Relayed addresses are
//! not kept: the relay path is found again through the bootstrap peers. At a start, and
//! whenever the node has no peer left, it dials up to [`REDIAL`] peers it is not connected to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use agora_crdt::SubwikiId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Peers kept at most.
pub(crate) const MAX_PEERS: usize = 128;
/// Addresses kept per peer at most.
pub(crate) const MAX_ADDRS: usize = 4;
/// Subwikis noted per peer at most (the newest kept).
pub(crate) const MAX_SUBWIKIS: usize = 32;
/// Peers dialled at a start, or when none is left.
pub(crate) const REDIAL: usize = 8;
/// The file, in the home.
pub(crate) const FILE: &str = "peers.json";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    addrs: Vec<Multiaddr>,
    /// Seconds since 1970 of the last connection.
    last_seen: u64,
    /// Joined subwikis it shares, the newest first.
    subwikis: Vec<SubwikiId>,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    peer: String,
    addrs: Vec<String>,
    last_seen: u64,
    #[serde(default)]
    subwikis: Vec<String>,
}

/// The peers this node met.
#[derive(Debug)]
pub(crate) struct Book {
    path: Option<PathBuf>,
    peers: BTreeMap<PeerId, Known>,
    /// Changed since the file was last written.
    dirty: bool,
}

impl Book {
    /// The book kept in `home` (empty if there is none, or it does not read: it fills again).
    pub(crate) fn load(home: Option<&Path>) -> Self {
        let path = home.map(|h| h.join(FILE));
        let mut peers = BTreeMap::new();
        if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            match serde_json::from_str::<Vec<FileEntry>>(&text) {
                Ok(entries) => {
                    for e in entries {
                        let Ok(peer) = PeerId::from_str(&e.peer) else {
                            continue;
                        };
                        let addrs: Vec<Multiaddr> = e
                            .addrs
                            .iter()
                            .filter_map(|a| Multiaddr::from_str(a).ok())
                            .filter(keepable)
                            .take(MAX_ADDRS)
                            .collect();
                        let subwikis = e
                            .subwikis
                            .iter()
                            .filter_map(|s| SubwikiId::from_str(s).ok())
                            .take(MAX_SUBWIKIS)
                            .collect();
                        if !addrs.is_empty() {
                            peers.insert(
                                peer,
                                Known {
                                    addrs,
                                    last_seen: e.last_seen,
                                    subwikis,
                                },
                            );
                        }
                    }
                }
                Err(e) => tracing::warn!("{FILE} not read, starting with no known peer: {e}"),
            }
        }
        let mut book = Self {
            path,
            peers,
            dirty: false,
        };
        book.bound();
        book
    }

    /// Notes that `peer` listens on `addrs` and was connected at `now` (seconds).
    pub(crate) fn met(
        &mut self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
        now: u64,
    ) {
        let known = self.peers.entry(peer).or_insert(Known {
            addrs: Vec::new(),
            last_seen: now,
            subwikis: Vec::new(),
        });
        for addr in addrs.into_iter().filter(keepable) {
            let addr = without_peer(addr);
            if let Some(at) = known.addrs.iter().position(|a| *a == addr) {
                known.addrs.remove(at);
            }
            known.addrs.insert(0, addr);
        }
        known.addrs.truncate(MAX_ADDRS);
        known.last_seen = now;
        if known.addrs.is_empty() {
            self.peers.remove(&peer);
        }
        self.dirty = true;
        self.bound();
    }

    /// Notes that `peer` shares the joined `subwiki` (no effect for a peer not in the book).
    pub(crate) fn shares(&mut self, peer: PeerId, subwiki: SubwikiId) {
        if let Some(known) = self.peers.get_mut(&peer) {
            if known.subwikis.first() == Some(&subwiki) {
                return;
            }
            known.subwikis.retain(|s| *s != subwiki);
            known.subwikis.insert(0, subwiki);
            known.subwikis.truncate(MAX_SUBWIKIS);
            self.dirty = true;
        }
    }

    /// The addresses to dial, each with its `/p2p/` part: of the peers not in `connected`, for
    /// each of the `joined` subwikis the one sharing it seen last, then the most recently seen
    /// others, [`REDIAL`] peers in all.
    pub(crate) fn to_dial(
        &self,
        joined: &[SubwikiId],
        connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<Multiaddr> {
        let mut known: Vec<(&PeerId, &Known)> =
            self.peers.iter().filter(|(p, _)| !connected(p)).collect();
        known.sort_by_key(|(_, k)| std::cmp::Reverse(k.last_seen));
        let mut chosen: Vec<&PeerId> = Vec::new();
        for subwiki in joined {
            if chosen.len() >= REDIAL {
                break;
            }
            if let Some((peer, _)) = known
                .iter()
                .find(|(p, k)| k.subwikis.contains(subwiki) && !chosen.contains(p))
            {
                chosen.push(peer);
            }
        }
        for (peer, _) in &known {
            if chosen.len() >= REDIAL {
                break;
            }
            if !chosen.contains(peer) {
                chosen.push(peer);
            }
        }
        chosen
            .into_iter()
            .filter_map(|peer| self.peers.get(peer).map(|k| (peer, k)))
            .flat_map(|(peer, k)| {
                k.addrs
                    .iter()
                    .map(move |a| a.clone().with(Protocol::P2p(*peer)))
            })
            .collect()
    }

    /// The file's text if the book changed since it was last taken (to write off the network
    /// task), with where it goes.
    pub(crate) fn take_changes(&mut self) -> Option<(PathBuf, String)> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let path = self.path.clone()?;
        let entries: Vec<FileEntry> = self
            .peers
            .iter()
            .map(|(peer, k)| FileEntry {
                peer: peer.to_string(),
                addrs: k.addrs.iter().map(ToString::to_string).collect(),
                last_seen: k.last_seen,
                subwikis: k.subwikis.iter().map(ToString::to_string).collect(),
            })
            .collect();
        serde_json::to_string_pretty(&entries)
            .ok()
            .map(|text| (path, text))
    }

    fn bound(&mut self) {
        while self.peers.len() > MAX_PEERS {
            let oldest = self
                .peers
                .iter()
                .min_by_key(|(_, k)| k.last_seen)
                .map(|(p, _)| *p);
            match oldest {
                Some(peer) => {
                    self.peers.remove(&peer);
                }
                None => break,
            }
        }
    }
}

/// Whether an address is worth keeping: not relayed, not unspecified.
fn keepable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| {
        matches!(p, Protocol::P2pCircuit)
            || matches!(p, Protocol::Ip4(ip) if ip.is_unspecified())
            || matches!(p, Protocol::Ip6(ip) if ip.is_unspecified())
    })
}

/// The address without a trailing `/p2p/<peer>`.
fn without_peer(mut addr: Multiaddr) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/192.0.2.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn the_book_keeps_the_newest_peers_and_addresses_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = Book::load(Some(dir.path()));
        let first = PeerId::random();
        book.met(first, (0..10).map(|i| addr(4000 + i)), 1);
        let relayed: Multiaddr = "/ip4/192.0.2.9/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
            .parse()
            .unwrap();
        book.met(first, [relayed, "/ip4/0.0.0.0/tcp/1".parse().unwrap()], 2);
        for i in 0..(MAX_PEERS as u64 + 10) {
            book.met(PeerId::random(), [addr(5000)], 10 + i);
        }
        assert_eq!(book.peers.len(), MAX_PEERS);
        assert!(
            !book.peers.contains_key(&first),
            "the least recently seen went"
        );
        let newest = PeerId::random();
        book.met(newest, [addr(6000)], 1_000);
        let (path, text) = book.take_changes().unwrap();
        assert!(book.take_changes().is_none());
        std::fs::write(&path, text).unwrap();

        let again = Book::load(Some(dir.path()));
        assert_eq!(again.peers, book.peers);
        let dial = again.to_dial(&[], |_| false);
        assert_eq!(dial.len(), REDIAL);
        assert_eq!(
            dial[0],
            addr(6000).with(Protocol::P2p(newest)),
            "the most recently seen first"
        );
        assert!(
            again
                .to_dial(&[], |p| *p == newest)
                .iter()
                .all(|a| !a.to_string().contains(&newest.to_string()))
        );
    }

    #[test]
    fn each_joined_subwiki_gets_its_last_seen_peer_before_the_most_recent_others() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = Book::load(Some(dir.path()));
        let small = SubwikiId::from_bytes([1; 32]);
        let big = SubwikiId::from_bytes([2; 32]);
        let of_small = PeerId::random();
        book.met(of_small, [addr(4000)], 1);
        book.shares(of_small, small);
        for i in 0..(REDIAL as u64 * 2) {
            let peer = PeerId::random();
            book.met(peer, [addr(5000)], 100 + i);
            book.shares(peer, big);
        }
        let (path, text) = book.take_changes().unwrap();
        std::fs::write(path, text).unwrap();
        let again = Book::load(Some(dir.path()));
        let dial = again.to_dial(&[small, big], |_| false);
        assert_eq!(dial.len(), REDIAL);
        assert_eq!(
            dial[0],
            addr(4000).with(Protocol::P2p(of_small)),
            "the small subwiki's only peer, though seen long ago"
        );
        assert!(
            !again
                .to_dial(&[big], |_| false)
                .contains(&addr(4000).with(Protocol::P2p(of_small))),
            "without the small subwiki joined, the most recent peers only"
        );
    }

    #[test]
    fn relayed_and_unspecified_addresses_are_not_kept() {
        let mut book = Book::load(None);
        let peer = PeerId::random();
        book.met(peer, [addr(1).with(Protocol::P2pCircuit)], 1);
        assert!(book.peers.is_empty());
        book.met(peer, [addr(1), addr(1), addr(2)], 1);
        assert_eq!(book.peers[&peer].addrs, vec![addr(2), addr(1)]);
        assert!(book.take_changes().is_none(), "no home, no file");
    }

    #[test]
    fn a_damaged_file_gives_an_empty_book() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(Book::load(Some(dir.path())).peers.is_empty());
    }
}
