//! Prometheus metrics over HTTP: libp2p's (recorded by the node's network task into the shared
//! registry) and Agora's own, refreshed at each scrape.
//!
//! The server is axum on hyper, the node's own HTTP stack (`agora_node::http::serve_until`): it
//! answers `GET /metrics` (and `GET /`) with the registry in the OpenMetrics text format,
//! anything else with 404 or 405, at most [`MAX_CLIENTS`] renders at once, each within
//! [`REQUEST_TIMEOUT`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_crdt::SubwikiId;
use agora_node::Node;
use agora_node::net::MetricsRegistry;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Scrapes rendered at once; more wait.
pub const MAX_CLIENTS: usize = 8;
/// Time a client has to send its request and read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Labels = [(&'static str, String); 1];

/// Agora's own gauges.
#[derive(Debug, Clone)]
pub struct Gauges {
    seed_entries: Family<Labels, Gauge>,
    seed_over_cap: Family<Labels, Gauge>,
    store_bytes: Gauge,
    memory: Gauge,
    peers: Gauge,
}

impl Gauges {
    /// Registers the gauges under the `agora_` prefix.
    pub fn new(registry: &MetricsRegistry) -> Self {
        let gauges = Self {
            seed_entries: Family::default(),
            seed_over_cap: Family::default(),
            store_bytes: Gauge::default(),
            memory: Gauge::default(),
            peers: Gauge::default(),
        };
        let mut registry = registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let agora = registry.sub_registry_with_prefix("agora");
        agora.register(
            "seed_entries",
            "Entries held per seeded subwiki",
            gauges.seed_entries.clone(),
        );
        agora.register(
            "seed_over_cap",
            "1 for a seeded subwiki no longer replicated because a cap was reached",
            gauges.seed_over_cap.clone(),
        );
        agora.register(
            "store_bytes",
            "Bytes the store takes on disk (0 when not seeding)",
            gauges.store_bytes.clone(),
        );
        agora.register(
            "resident_memory_bytes",
            "Resident memory of the process",
            gauges.memory.clone(),
        );
        agora.register(
            "connected_peers",
            "Peers connected now",
            gauges.peers.clone(),
        );
        gauges
    }

    /// Marks a seeded subwiki as over its cap.
    pub fn over_cap(&self, subwiki: SubwikiId) {
        self.seed_over_cap
            .get_or_create(&[("subwiki", subwiki.to_string())])
            .set(1);
    }
}

/// What a scrape reads.
#[derive(Debug, Clone)]
pub struct Source {
    /// The registry the node records into.
    pub registry: MetricsRegistry,
    /// Agora's gauges in it.
    pub gauges: Gauges,
    /// The node, for entries per subwiki and peers.
    pub node: Node,
    /// The store directory, when seeding.
    pub store: Option<PathBuf>,
}

impl Source {
    /// Refreshes the gauges and encodes the registry.
    pub async fn render(&self) -> String {
        let g = &self.gauges;
        for info in self.node.subwikis().unwrap_or_default() {
            let labels = [("subwiki", info.id.to_string())];
            g.seed_entries
                .get_or_create(&labels)
                .set(i64::try_from(info.entries).unwrap_or(i64::MAX));
        }
        let bytes = self.store.as_deref().map_or(0, super::disk_usage);
        g.store_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        let rss = agora_node::net::resident_memory().unwrap_or(0);
        g.memory.set(i64::try_from(rss).unwrap_or(i64::MAX));
        let peers = self.node.peers().await.len();
        g.peers.set(i64::try_from(peers).unwrap_or(i64::MAX));
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::warn!("cannot encode metrics: {e}");
        }
        text
    }
}

/// Serves scrapes until `stop` turns true: `GET /metrics` (and `GET /`), on axum and hyper like
/// the node's own API, at most [`MAX_CLIENTS`] renders at once, each within
/// [`REQUEST_TIMEOUT`].
pub async fn serve(listener: TcpListener, source: Source, mut stop: watch::Receiver<bool>) {
    let router = Router::new()
        .route("/", get(scrape))
        .route("/metrics", get(scrape))
        .fallback(not_found)
        .with_state(Arc::new(source))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_CLIENTS));
    let stopped = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                return;
            }
        }
    };
    agora_node::http::serve_until(listener, router, false, stopped).await;
}

async fn scrape(State(source): State<Arc<Source>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        source.render().await,
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
