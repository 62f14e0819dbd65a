//! The daemon's Prometheus collectors, in an explicit [`Registry`] (never prometheus's default
//! one).
//!
//! The collectors are lock-free atomic counters, gauges and histograms that the actors
//! update where the event happens (a scan ends, a file arrives, an authentication fails). They
//! are process-wide statics, not actor state: no actor owns them, none reads another's through
//! them, and a restarted actor keeps counting where its predecessor stopped. Values that the
//! index knows (files out of sync, last sync) are read from the shares when `/metrics` is
//! scraped.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label values of the `extension` label on byte counters.
pub const EXTENSIONS: [&str; 3] = ["plain", "rsync", "gzip"];
/// Actor kinds that are restarted on a crash (label values of `actor`).
pub const RESTARTED_ACTORS: [&str; 8] =
    ["discovery", "reach", "listener", "share", "transfer", "control", "metrics", "peer"];

/// Label values of `part` on `clearskies_index_memory_bytes`.
pub const INDEX_MEMORY_PARTS: [&str; 3] = ["memtables", "table_readers", "block_cache"];

/// Every collector of the daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Peer sessions that are ready, by access level.
    pub peers_connected: IntGaugeVec,
    /// Bytes written to peers' connections, by extension.
    pub sent_bytes: IntCounterVec,
    /// Bytes read from peers' connections, by extension.
    pub received_bytes: IntCounterVec,
    /// Files waiting for contents, per share ID.
    pub files_out_of_sync: IntGaugeVec,
    /// Bytes of those files, per share ID.
    pub bytes_out_of_sync: IntGaugeVec,
    /// Unix time the share was last seen in sync, per share ID.
    pub last_sync: IntGaugeVec,
    /// 1 when the share is in an error state (missing root, index failure), per share ID.
    pub share_error: IntGaugeVec,
    /// 1 when no peer has been connected for `peers_gone_after`, per share ID.
    pub share_peers_gone: IntGaugeVec,
    /// Scan durations.
    pub scan_duration: Histogram,
    /// Download durations (request answered → file verified and synced to disk).
    pub transfer_duration: Histogram,
    /// Concurrent edits resolved with a conflict copy.
    pub conflicts: IntCounter,
    /// Connections that failed authentication (wrong code or key, unknown ID).
    pub auth_failures: IntCounter,
    /// Incoming authentication attempts refused before SRP by the rate limits.
    pub auth_throttled: IntCounter,
    /// `database.update`s refused for a missing or bad signature (the connection closes).
    pub rejected_updates: IntCounter,
    /// Actors restarted after a crash, by actor kind.
    pub actor_restarts: IntCounterVec,
    /// inotify queue overflows (each one costs a full rescan).
    pub watch_overflows: IntCounter,
    /// Index write (one synced `WriteBatch`) latency.
    pub db_write_duration: Histogram,
    /// The index's memory by part (set from RocksDB's figures when `/metrics` is scraped).
    pub index_memory: IntGaugeVec,
    /// Worker processes the monitor restarted after a crash (since `clearskies start`).
    pub worker_restarts: IntCounter,
    /// Seconds the worker process has run.
    pub uptime: IntGauge,
    /// 1 while the router forwards the peer port (NAT-PMP or UPnP), else 0.
    pub port_mapped: IntGauge,
    /// Whether peers outside the LAN can connect: 1 yes, 0 no, -1 cannot tell.
    pub reachable: IntGauge,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Only reachable with an invalid name or label set, i.e. a bug in this file (the unit
    // test below builds every collector).
    r.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

/// Makes the collectors, each registered in `registry` as it is made.
struct Families {
    registry: Registry,
}

/// [`Metrics`]' gauges per share ID.
struct ShareGauges {
    files: IntGaugeVec,
    bytes: IntGaugeVec,
    last_sync: IntGaugeVec,
    error: IntGaugeVec,
    peers_gone: IntGaugeVec,
}

impl Families {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: prometheus::Result<C>) -> C {
        let c = must(c);
        must(self.registry.register(Box::new(c.clone())));
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help))
    }

    fn counter_vec(&self, name: &str, help: &str, label: &str) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), &[label]))
    }

    fn gauge_vec(&self, name: &str, help: &str, label: &str) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), &[label]))
    }

    /// The gauges per share ID (set from the shares' indexes when `/metrics` is scraped).
    fn share_gauges(&self) -> ShareGauges {
        let gauge = |name: &str, help: &str| self.gauge_vec(name, help, "share");
        ShareGauges {
            files: gauge("clearskies_share_out_of_sync_files", "Files of the share waiting for contents from a peer."),
            bytes: gauge("clearskies_share_out_of_sync_bytes", "Bytes of the files waiting for contents from a peer."),
            last_sync: gauge(
                "clearskies_share_last_sync_timestamp_seconds",
                "Unix time the share was last seen in sync with its connected peers (0: not yet).",
            ),
            error: gauge(
                "clearskies_share_error",
                "1 when the share is in an error state (missing root, index failure), else 0.",
            ),
            peers_gone: gauge(
                "clearskies_share_peers_gone",
                "1 when no peer of the share has been connected for peers_gone_after seconds, else 0.",
            ),
        }
    }

    /// Durations in seconds: 9 buckets from `from`, each 4 times the one before.
    fn seconds(&self, name: &str, help: &str, from: f64) -> Histogram {
        let buckets = must(prometheus::exponential_buckets(from, 4.0, 9));
        self.add(Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)))
    }
}

impl Metrics {
    fn new() -> Self {
        let f = Families { registry: Registry::new() };
        let share = f.share_gauges();
        let m = Metrics {
            peers_connected: f.gauge_vec(
                "clearskies_peers_connected",
                "Peer sessions that are ready, by access level.",
                "access_level",
            ),
            sent_bytes: f.counter_vec(
                "clearskies_peer_sent_bytes_total",
                "Bytes sent to peers (protocol stream, before TLS), by extension used.",
                "extension",
            ),
            received_bytes: f.counter_vec(
                "clearskies_peer_received_bytes_total",
                "Bytes received from peers (protocol stream, after TLS), by extension used.",
                "extension",
            ),
            files_out_of_sync: share.files,
            bytes_out_of_sync: share.bytes,
            last_sync: share.last_sync,
            share_error: share.error,
            share_peers_gone: share.peers_gone,
            scan_duration: f.seconds(
                "clearskies_share_scan_duration_seconds",
                "Duration of share scans (walk, stat and hash of changed files).",
                0.001,
            ),
            transfer_duration: f.seconds(
                "clearskies_transfer_duration_seconds",
                "Duration of file downloads, from the first byte to the verified, fsynced temp file.",
                0.001,
            ),
            conflicts: f
                .counter("clearskies_share_conflicts_total", "Concurrent edits resolved by keeping a CONFLICT copy."),
            auth_failures: f
                .counter("clearskies_auth_failures_total", "Incoming connections that failed authentication."),
            rejected_updates: f.counter(
                "clearskies_peer_rejected_updates_total",
                "database.update messages refused because a read-only connection needs a valid read-write signature.",
            ),
            auth_throttled: f.counter(
                "clearskies_auth_throttled_total",
                "Incoming authentication attempts refused before SRP: too many from one IP or for one access ID.",
            ),
            actor_restarts: f.counter_vec(
                "clearskies_actor_restarts_total",
                "Actors restarted inside the worker after a crash, by actor kind.",
                "actor",
            ),
            watch_overflows: f.counter(
                "clearskies_watch_overflows_total",
                "inotify queue overflows (each one triggers a full rescan).",
            ),
            db_write_duration: f.seconds(
                "clearskies_store_write_duration_seconds",
                "Latency of index writes (one synced RocksDB write batch).",
                0.0001,
            ),
            index_memory: f.gauge_vec(
                "clearskies_index_memory_bytes",
                "Memory the index (RocksDB) holds, by part: memtables, table_readers, block_cache.",
                "part",
            ),
            worker_restarts: f.counter(
                "clearskies_worker_restarts_total",
                "Worker processes restarted by the monitor after a crash since the daemon started.",
            ),
            uptime: f
                .add(IntGauge::new("clearskies_worker_uptime_seconds", "Seconds since the worker process started.")),
            port_mapped: f.add(IntGauge::new(
                "clearskies_port_mapped",
                "1 while the router forwards the peer port (NAT-PMP or UPnP IGD), else 0.",
            )),
            reachable: f.add(IntGauge::new(
                "clearskies_reachable",
                "Whether peers outside the LAN can connect to this daemon: 1 yes, 0 no, -1 cannot tell (yet).",
            )),
            registry: f.registry,
        };
        m.zero_series();
        m
    }

    /// Bytes sent to and received from peers since the worker started, every extension.
    pub fn peer_byte_totals(&self) -> (u64, u64) {
        let sum = |c: &IntCounterVec| EXTENSIONS.iter().map(|e| c.with_label_values(&[e]).get()).sum();
        (sum(&self.sent_bytes), sum(&self.received_bytes))
    }

    /// Every label value that can appear, at zero: dashboards and `rate()` see the series
    /// from the first scrape, not from the first event.
    fn zero_series(&self) {
        for e in EXTENSIONS {
            self.sent_bytes.with_label_values(&[e]);
            self.received_bytes.with_label_values(&[e]);
        }
        for a in RESTARTED_ACTORS {
            self.actor_restarts.with_label_values(&[a]);
        }
        for level in ["read_write", "read_only", "untrusted"] {
            self.peers_connected.with_label_values(&[level]);
        }
        for part in INDEX_MEMORY_PARTS {
            self.index_memory.with_label_values(&[part]);
        }
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a failure would be a bug in a collector.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The daemon's collectors.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_collector_is_registered_and_encodes() {
        let m = metrics();
        m.conflicts.inc();
        m.files_out_of_sync.with_label_values(&["ab"]).set(3);
        let text = m.encode();
        for name in [
            "clearskies_peers_connected{access_level=\"read_write\"} 0",
            "clearskies_peer_sent_bytes_total{extension=\"rsync\"} 0",
            "clearskies_share_out_of_sync_files{share=\"ab\"} 3",
            "clearskies_share_conflicts_total ",
            "clearskies_actor_restarts_total{actor=\"transfer\"} 0",
            "clearskies_share_scan_duration_seconds_bucket{le=\"+Inf\"} ",
            "clearskies_store_write_duration_seconds_count",
            "clearskies_index_memory_bytes{part=\"block_cache\"} ",
            "clearskies_worker_restarts_total ",
            "# TYPE clearskies_transfer_duration_seconds histogram",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
