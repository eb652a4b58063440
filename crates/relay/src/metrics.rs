//! Prometheus counters for `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub reason: &'static str,
}

pub(crate) struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub listening: Gauge,
    pub pipes: Gauge,
    pub pipes_total: Counter,
    pub bytes: Counter,
    pub refused: Family<Reason, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shoal_relay");
        let connections = Gauge::default();
        registry.register("connections", "TCP connections open", connections.clone());
        let listening = Gauge::default();
        registry.register(
            "peers_listening",
            "Peers keeping a connection to be reached through this relay",
            listening.clone(),
        );
        let pipes = Gauge::default();
        registry.register("pipes", "Pipes open between two peers", pipes.clone());
        let pipes_total = Counter::default();
        registry.register("pipes_opened", "Pipes opened", pipes_total.clone());
        let bytes = Counter::default();
        registry.register("piped_bytes", "Bytes piped, both directions", bytes.clone());
        let refused = Family::<Reason, Counter>::default();
        registry.register("refused", "Requests refused, by reason", refused.clone());
        Self {
            registry,
            connections,
            listening,
            pipes,
            pipes_total,
            bytes,
            refused,
        }
    }

    pub fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
