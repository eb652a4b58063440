//! Prometheus counters for `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub live_peers: Gauge,
    pub store_up: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shoal_tracker");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let live_peers = Gauge::default();
        registry.register(
            "live_peers",
            "Peers with an unexpired registration",
            live_peers.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 while the store answered the last check (healthz, metrics), else 0",
            store_up.clone(),
        );
        Self {
            registry,
            requests,
            live_peers,
            store_up,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
