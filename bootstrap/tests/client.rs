//! A lightweight peer for load and limit tests: TCP, noise, yamux, identify, ping and
//! gossipsub subscribed to Agora's directory topic, as a personal node would be. Each runs as
//! its own task and reports what happens to its connection.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, gossipsub, identify, noise, ping, tcp, yamux};
use tokio::sync::mpsc;

/// What happened to client `n`'s connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Connected(usize),
    /// The connection closed, or never came up.
    Refused(usize),
    /// A ping went through.
    Pinged(usize),
}

#[derive(NetworkBehaviour)]
struct Client {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
}

/// Starts client `n`, which dials `target` and reports on `reports` until the task is aborted.
pub fn spawn(
    n: usize,
    target: Multiaddr,
    reports: mpsc::Sender<Report>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|key| {
                let mut gossipsub = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Anonymous,
                    gossipsub::ConfigBuilder::default()
                        .validation_mode(gossipsub::ValidationMode::Anonymous)
                        .build()
                        .unwrap(),
                )
                .unwrap();
                gossipsub
                    .subscribe(&gossipsub::IdentTopic::new("agora/directory/1"))
                    .unwrap();
                Client {
                    identify: identify::Behaviour::new(identify::Config::new(
                        "/agora/1.0.0".into(),
                        key.public(),
                    )),
                    ping: ping::Behaviour::new(
                        ping::Config::new().with_interval(Duration::from_secs(1)),
                    ),
                    gossipsub,
                }
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
            .build();
        if swarm.dial(target).is_err() {
            let _ = reports.send(Report::Refused(n)).await;
            return;
        }
        loop {
            let report = match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => Report::Connected(n),
                SwarmEvent::ConnectionClosed { .. }
                | SwarmEvent::OutgoingConnectionError { .. } => Report::Refused(n),
                SwarmEvent::Behaviour(ClientEvent::Ping(ping::Event { result: Ok(_), .. })) => {
                    Report::Pinged(n)
                }
                _ => continue,
            };
            if reports.send(report).await.is_err() {
                return;
            }
        }
    })
}
