//! How this node can be reached, and how it reaches each of its peers.
//!
//! AutoNAT (v1) asks a connected peer at a public address to dial this node back at the
//! addresses it was seen at. A node behind NAT hears "private"; it then takes a reservation at
//! up to [`MAX_AUTO_RELAYS`] connected peers that serve as circuit relays (bootstrap peers
//! first), so that others can reach it at `<relay>/p2p-circuit`, and DCUtR replaces each
//! relayed connection with a direct one where hole punching works. Once a direct connection to
//! a peer exists, the relayed ones to it are closed: the relay's bytes are kept for the peers
//! that cannot punch through.
//!
//! [`Reach`] keeps what that needs and what the node reports: the NAT status, every connection
//! and whether it is relayed, the peers that serve as relays, and the hole punches tried.

use std::collections::{HashMap, HashSet};

use libp2p::autonat::NatStatus;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Relays a node behind NAT takes a reservation at by itself.
pub const MAX_AUTO_RELAYS: usize = 2;
/// Relay-capable peers remembered as candidates.
const MAX_CANDIDATES: usize = 64;

/// How others can reach this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reachability {
    /// At an address of its own: a peer confirmed it can dial it there (AutoNAT), or it was
    /// configured with a public address.
    Direct,
    /// Through a relay it holds a reservation at: others reach it relayed first, then directly
    /// where hole punching works.
    Relayed,
    /// Only by peers on its own network (mDNS) and by those it dials itself.
    LanOnly,
}

impl Reachability {
    /// The words a person reads.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Direct => "direct (others can connect to this node)",
            Self::Relayed => {
                "relayed (behind NAT; reachable through a relay, direct where hole punching works)"
            }
            Self::LanOnly => "LAN only (others reach this node only on its local network)",
        }
    }
}

/// The network side of the node's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// How others can reach this node.
    pub reachability: Reachability,
    /// What AutoNAT last concluded: `public`, `private`, or `unknown` (no peer at a public
    /// address has tested it yet).
    pub nat: String,
    /// The relays it holds a reservation at (their addresses).
    pub relays: Vec<String>,
    /// Relayed connections replaced by direct ones through hole punching (DCUtR).
    pub hole_punches_succeeded: u64,
    /// Hole punches that failed; the relayed connection stayed.
    pub hole_punches_failed: u64,
    /// Relayed connections opened since the node started (a relay closes a circuit at its
    /// limits on time and bytes; the peers then connect again).
    pub relayed_connections: u64,
}

/// One open connection.
#[derive(Debug, Clone)]
struct Connection {
    id: ConnectionId,
    remote: Multiaddr,
    relayed: bool,
}

/// Reachability and paths, kept by the network task.
#[derive(Debug)]
pub(crate) struct Reach {
    nat: NatStatus,
    connections: HashMap<PeerId, Vec<Connection>>,
    /// Connected peers that said (identify) they serve as circuit relays.
    candidates: HashSet<PeerId>,
    punched: u64,
    punch_failed: u64,
    relayed_opened: u64,
}

impl Default for Reach {
    fn default() -> Self {
        Self {
            nat: NatStatus::Unknown,
            connections: HashMap::new(),
            candidates: HashSet::new(),
            punched: 0,
            punch_failed: 0,
            relayed_opened: 0,
        }
    }
}

impl Reach {
    pub(crate) fn nat(&self) -> &NatStatus {
        &self.nat
    }

    pub(crate) fn set_nat(&mut self, status: NatStatus) {
        self.nat = status;
    }

    /// A connection was established. Returns the relayed connections to the same peer that a
    /// direct one makes redundant (to be closed).
    pub(crate) fn opened(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remote: Multiaddr,
        relayed: bool,
    ) -> Vec<ConnectionId> {
        let list = self.connections.entry(peer).or_default();
        list.push(Connection {
            id,
            remote,
            relayed,
        });
        if relayed {
            self.relayed_opened += 1;
            return Vec::new();
        }
        list.iter().filter(|c| c.relayed).map(|c| c.id).collect()
    }

    pub(crate) fn closed(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(list) = self.connections.get_mut(&peer) {
            list.retain(|c| c.id != id);
            if list.is_empty() {
                self.connections.remove(&peer);
                self.candidates.remove(&peer);
            }
        }
    }

    /// Whether every connection to `peer` is relayed (false if there is none).
    pub(crate) fn relayed_only(&self, peer: &PeerId) -> bool {
        self.connections
            .get(peer)
            .is_some_and(|list| list.iter().all(|c| c.relayed))
    }

    /// The addresses of the connections to `peer`.
    pub(crate) fn addresses(&self, peer: &PeerId) -> Vec<Multiaddr> {
        let mut addrs: Vec<Multiaddr> = Vec::new();
        for c in self.connections.get(peer).into_iter().flatten() {
            if !addrs.contains(&c.remote) {
                addrs.push(c.remote.clone());
            }
        }
        addrs
    }

    /// The address of a direct connection to `peer`, if there is one.
    pub(crate) fn direct_address(&self, peer: &PeerId) -> Option<&Multiaddr> {
        self.connections
            .get(peer)?
            .iter()
            .find(|c| !c.relayed)
            .map(|c| &c.remote)
    }

    /// `peer` serves as a relay (its identify protocols include the hop protocol).
    pub(crate) fn relay_offered(&mut self, peer: PeerId) {
        if self.candidates.len() < MAX_CANDIDATES {
            self.candidates.insert(peer);
        }
    }

    /// Relay candidates connected directly, `preferred` first (bootstrap peers), then by id
    /// (any order would do; this one is stable).
    pub(crate) fn relay_candidates(&self, preferred: &HashSet<PeerId>) -> Vec<PeerId> {
        let mut list: Vec<PeerId> = self
            .candidates
            .iter()
            .copied()
            .filter(|p| self.direct_address(p).is_some())
            .collect();
        list.sort_by_key(|p| (!preferred.contains(p), *p));
        list
    }

    /// A hole punch ended.
    pub(crate) fn punched(&mut self, ok: bool) {
        if ok {
            self.punched += 1;
        } else {
            self.punch_failed += 1;
        }
    }

    /// The status to report. `reserved` are the relays with an accepted reservation;
    /// `public` whether the node has a confirmed address of its own that is not relayed.
    pub(crate) fn status(&self, reserved: Vec<String>, public: bool) -> NetworkStatus {
        let reachability = if public || self.nat.is_public() {
            Reachability::Direct
        } else if !reserved.is_empty() {
            Reachability::Relayed
        } else {
            Reachability::LanOnly
        };
        let nat = match self.nat {
            NatStatus::Public(_) => "public",
            NatStatus::Private => "private",
            NatStatus::Unknown => "unknown",
        };
        NetworkStatus {
            reachability,
            nat: nat.to_owned(),
            relays: reserved,
            hole_punches_succeeded: self.punched,
            hole_punches_failed: self.punch_failed,
            relayed_connections: self.relayed_opened,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    #[test]
    fn a_direct_connection_makes_the_relayed_ones_redundant() {
        let mut reach = Reach::default();
        let p = peer();
        let relayed = ConnectionId::new_unchecked(1);
        let direct = ConnectionId::new_unchecked(2);
        let circuit: Multiaddr = "/ip4/11.0.0.1/tcp/1/p2p-circuit".parse().unwrap();
        assert!(reach.opened(p, relayed, circuit, true).is_empty());
        assert!(reach.relayed_only(&p));
        let addr: Multiaddr = "/ip4/11.0.0.12/tcp/2".parse().unwrap();
        assert_eq!(reach.opened(p, direct, addr.clone(), false), vec![relayed]);
        reach.closed(p, relayed);
        assert!(!reach.relayed_only(&p));
        assert_eq!(reach.direct_address(&p), Some(&addr));
        reach.closed(p, direct);
        assert!(!reach.relayed_only(&p));
    }

    #[test]
    fn reachability_follows_nat_status_and_reservations() {
        let mut reach = Reach::default();
        assert_eq!(
            reach.status(vec![], false).reachability,
            Reachability::LanOnly
        );
        assert_eq!(reach.status(vec![], false).nat, "unknown");
        reach.set_nat(NatStatus::Private);
        let relayed = reach.status(vec!["/ip4/11.0.0.1/tcp/1".into()], false);
        assert_eq!(relayed.reachability, Reachability::Relayed);
        assert_eq!(
            reach.status(vec![], true).reachability,
            Reachability::Direct
        );
        reach.set_nat(NatStatus::Public("/ip4/11.0.0.2/tcp/1".parse().unwrap()));
        assert_eq!(
            reach.status(vec![], false).reachability,
            Reachability::Direct
        );
    }

    #[test]
    fn relay_candidates_are_directly_connected_and_bootstrap_peers_come_first() {
        let mut reach = Reach::default();
        let (a, b, c) = (peer(), peer(), peer());
        let addr: Multiaddr = "/ip4/11.0.0.1/tcp/1".parse().unwrap();
        let circuit: Multiaddr = "/ip4/11.0.0.1/tcp/1/p2p-circuit".parse().unwrap();
        reach.opened(a, ConnectionId::new_unchecked(1), addr.clone(), false);
        reach.opened(b, ConnectionId::new_unchecked(2), addr, false);
        reach.opened(c, ConnectionId::new_unchecked(3), circuit, true);
        for p in [a, b, c] {
            reach.relay_offered(p);
        }
        let preferred = HashSet::from([b]);
        assert_eq!(reach.relay_candidates(&preferred), vec![b, a]);
        reach.closed(b, ConnectionId::new_unchecked(2));
        assert_eq!(reach.relay_candidates(&preferred), vec![a]);
    }
}
