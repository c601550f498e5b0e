//! The address book: peers this node met, with the addresses they listen on and when they
//! were last connected, kept in `<home>/peers.json` so that a node restarted without
//! `--bootstrap` and without mDNS (a laptop that slept, then woke on another network) finds
//! its peers again by itself.
//!
//! Bounded: at most [`MAX_PEERS`] peers (the least recently seen go first) and
//! [`MAX_ADDRS`] addresses each (the newest kept). Relayed addresses are not kept: the relay
//! path is found again through the bootstrap peers. At a start, and whenever the node has no
//! peer left, it dials the [`REDIAL`] most recently seen peers it is not connected to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Peers kept at most.
pub(crate) const MAX_PEERS: usize = 128;
/// Addresses kept per peer at most.
pub(crate) const MAX_ADDRS: usize = 4;
/// Peers dialled at a start, or when none is left.
pub(crate) const REDIAL: usize = 8;
/// The file, in the home.
pub(crate) const FILE: &str = "peers.json";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    addrs: Vec<Multiaddr>,
    /// Seconds since 1970 of the last connection.
    last_seen: u64,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    peer: String,
    addrs: Vec<String>,
    last_seen: u64,
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
                        if !addrs.is_empty() {
                            peers.insert(
                                peer,
                                Known {
                                    addrs,
                                    last_seen: e.last_seen,
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

    /// The addresses to dial: the [`REDIAL`] most recently seen peers not in `connected`,
    /// each address with its `/p2p/` part.
    pub(crate) fn to_dial(&self, connected: impl Fn(&PeerId) -> bool) -> Vec<Multiaddr> {
        let mut known: Vec<(&PeerId, &Known)> =
            self.peers.iter().filter(|(p, _)| !connected(p)).collect();
        known.sort_by_key(|(_, k)| std::cmp::Reverse(k.last_seen));
        known
            .into_iter()
            .take(REDIAL)
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
        let dial = again.to_dial(|_| false);
        assert_eq!(dial.len(), REDIAL);
        assert_eq!(
            dial[0],
            addr(6000).with(Protocol::P2p(newest)),
            "the most recently seen first"
        );
        assert!(
            again
                .to_dial(|p| *p == newest)
                .iter()
                .all(|a| !a.to_string().contains(&newest.to_string()))
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
