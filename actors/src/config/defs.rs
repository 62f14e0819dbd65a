//! Every setting, defined once (ripgrep's `flags/defs.rs`): its name in `config.toml`, a doc
//! line, its environment variable, its default, how its value is read and shown, and when a
//! new value takes effect. The binary's loader (`config.toml`, then the environment), the
//! control socket's `get_config` and `set_config`, and `clearskies config get/set` all
//! iterate [`SETTINGS`].
//!
//! Adding a setting: a field in [`Values`], an entry here (the default is text, read like an
//! environment variable), and, if it changes at runtime, `Applies::Runtime` (its owners
//! read it from `config::Runtime`). The unit tests check that every entry's default reads and that names are unique.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::parse::{self, Expected, Raw};
use super::MinFree;

/// When a new value takes effect.
#[derive(Clone, Copy)]
pub enum Applies {
    /// At the next start: the worker is built from it.
    AtStart,
    /// At once: its owners read it from [`super::Runtime`] where they use it.
    Runtime,
    /// At once, and the function hands it to an owner that is not an actor (the bandwidth
    /// buckets) when the worker starts and whenever `config set` changes it.
    RuntimeBy(fn(&Values)),
}

impl Applies {
    /// Whether `config set` changes it while the daemon runs.
    pub fn is_runtime(self) -> bool {
        matches!(self, Applies::Runtime | Applies::RuntimeBy(_))
    }
}

impl std::fmt::Debug for Applies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Applies::AtStart => "AtStart",
            Applies::Runtime => "Runtime",
            Applies::RuntimeBy(_) => "RuntimeBy",
        })
    }
}

/// One setting.
#[derive(Debug)]
pub struct Setting {
    /// The key in `config.toml` (and in `config get/set`).
    pub name: &'static str,
    /// One line for the documentation.
    pub doc: &'static str,
    /// The environment variable that overrides `config.toml`.
    pub env: &'static str,
    /// The default, as text (read like the environment variable).
    pub default: &'static str,
    /// When a new value takes effect.
    pub applies: Applies,
    /// Reads and checks a value into `values` (the error says what was expected).
    pub set: fn(&mut Values, Raw<'_>) -> Result<(), Expected>,
    /// The value in `values`, as `config.toml` holds it.
    pub get: fn(&Values) -> toml::Value,
}

/// Every setting's value, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values {
    /// TCP port for peers (0: the OS picks one, kept across worker restarts).
    pub listen_port: u16,
    /// Address peers connect to.
    pub listen_address: IpAddr,
    /// Peers dialled for every share, `HOST:PORT`.
    pub peers: Vec<String>,
    /// Trackers, `HOST:PORT`.
    pub trackers: Vec<String>,
    /// LAN broadcast discovery.
    pub lan_discovery: bool,
    /// Ask the router to forward the peer port (NAT-PMP, then UPnP IGD).
    pub port_mapping: bool,
    /// STUN servers, `HOST:PORT`, asked for our public UDP address.
    pub stun_servers: Vec<String>,
    /// Where LAN broadcasts go.
    pub broadcast_address: IpAddr,
    /// The LAN broadcast port.
    pub broadcast_port: u16,
    /// Where `/metrics` and `/health` are served (`None`: off).
    pub metrics_address: Option<SocketAddr>,
    /// Where the web interface is served over HTTPS for other computers (`None`: off).
    pub web_https_address: Option<SocketAddr>,
    /// The HTTPS certificate chain (PEM; empty: a self-signed one in the data directory).
    pub web_tls_cert: String,
    /// Its private key (PEM).
    pub web_tls_key: String,
    /// Bytes per second (0: none).
    pub upload_limit: u64,
    /// Bytes per second (0: none).
    pub download_limit: u64,
    /// 0–9 (0: gzip not offered).
    pub gzip_level: u32,
    /// Per minute, per source and per access ID.
    pub auth_attempts_per_minute: u32,
    /// 1–100.
    pub mass_delete_percent: u8,
    /// What downloads leave free.
    pub min_free_space: MinFree,
    /// Seconds between full scans of an unwatched share.
    pub full_scan_interval: u64,
    /// Threads hashing a directory's changed files in a scan (0: one per core, at most 4).
    pub scan_hashers: u8,
    /// Days a file replaced or deleted by a peer is kept in `.clearskies/versions` (0: not kept).
    pub versions_keep_days: u32,
    /// Bytes the versions of one share may take (0: no cap).
    pub versions_max_size: u64,
    /// What peers see this daemon as (empty: the host name).
    pub device_name: String,
    /// Seconds without any connected peer after which a share is reported (0: never).
    pub peers_gone_after: u64,
}

impl Values {
    /// Where peers connect.
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.listen_address, self.listen_port)
    }

    /// Where LAN broadcasts go, if LAN discovery is on.
    pub fn lan(&self) -> Option<SocketAddr> {
        self.lan_discovery.then_some(SocketAddr::new(self.broadcast_address, self.broadcast_port))
    }
}

impl Default for Values {
    /// Every setting's default, read from [`SETTINGS`].
    fn default() -> Self {
        let mut values = Values {
            listen_port: 0,
            listen_address: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            peers: Vec::new(),
            trackers: Vec::new(),
            lan_discovery: false,
            port_mapping: false,
            stun_servers: Vec::new(),
            broadcast_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            broadcast_port: 0,
            metrics_address: None,
            web_https_address: None,
            web_tls_cert: String::new(),
            web_tls_key: String::new(),
            upload_limit: 0,
            download_limit: 0,
            gzip_level: 0,
            auth_attempts_per_minute: 0,
            mass_delete_percent: 0,
            min_free_space: MinFree::Bytes(0),
            full_scan_interval: 0,
            scan_hashers: 0,
            versions_keep_days: 0,
            versions_max_size: 0,
            device_name: String::new(),
            peers_gone_after: 0,
        };
        for s in SETTINGS {
            // The defaults are constants of the table, each read by `defaults_read` below.
            (s.set)(&mut values, Raw::Text(s.default)).expect("a setting's default reads");
        }
        values
    }
}

/// The setting called `name`.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Hands the values that owners outside the actors keep (the bandwidth limits) to them
/// (once, when the worker starts).
pub fn hand_over(values: &Values) {
    for s in SETTINGS {
        if let Applies::RuntimeBy(f) = s.applies {
            f(values);
        }
    }
}

/// The settings as a Markdown reference (`docs/settings.md` is this, checked by a test):
/// each setting's key, environment variable, default, when a change applies, and its doc.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Settings\n\n\
         Generated from the settings table (`actors/src/config/defs.rs`, `SETTINGS`); a unit test \
         keeps this file equal to it (`CLEARSKIES_BLESS=1 cargo test -p clearskies-actors \
         settings_reference` writes it again). Each key goes in `config.toml` in the data \
         directory; its environment variable overrides the file; `clearskies config get` shows \
         the values in effect and `clearskies config set KEY VALUE` changes one.\n\n\
         | key | environment variable | default | a change applies | what |\n|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let applies = if s.applies.is_runtime() { "at once" } else { "at the next start" };
        let default = if s.default.is_empty() { "none".to_owned() } else { format!("`{}`", s.default) };
        out.push_str(&format!("| `{}` | `{}` | {default} | {applies} | {} |\n", s.name, s.env, s.doc));
    }
    out
}

fn int(n: impl Into<u64>) -> toml::Value {
    // Every integer setting fits: ports, levels, percentages, and bytes checked by `parse::bytes`.
    toml::Value::Integer(i64::try_from(n.into()).unwrap_or(i64::MAX))
}

fn text(t: impl ToString) -> toml::Value {
    toml::Value::String(t.to_string())
}

fn list(l: &[String]) -> toml::Value {
    toml::Value::Array(l.iter().map(text).collect())
}

const PORT: Expected = "a port number";
const RATE: Expected = "a whole number of bytes per second (e.g. 500000, 500k, 2M; 0: no limit)";
const GZIP: Expected = "a zlib level 0-9 (0: gzip off)";

fn set_limits(v: &Values) {
    crate::bandwidth::bandwidth().set_limits(v.upload_limit, v.download_limit);
}

/// Every setting `config.toml` accepts, in the order the documentation lists them.
pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "listen_port",
        doc: "TCP port for peers; 0 lets the OS pick one (kept when a crashed worker restarts)",
        env: "CLEARSKIES_LISTEN_PORT",
        default: "49221",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.listen_port = port(raw)?;
            Ok(())
        },
        get: |v| int(v.listen_port),
    },
    Setting {
        name: "listen_address",
        doc: "address to listen on for peers (::: every interface, IPv6 and IPv4; 0.0.0.0: IPv4 only)",
        env: "CLEARSKIES_LISTEN_ADDRESS",
        default: "::",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.listen_address = parse::ip(raw)?;
            Ok(())
        },
        get: |v| text(v.listen_address),
    },
    Setting {
        name: "peers",
        doc: "peers dialled for every share, \"HOST:PORT\" (TCP) or \"utp:HOST:PORT\" (with backoff)",
        env: "CLEARSKIES_PEERS",
        default: "",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.peers = parse::addresses(raw)?;
            Ok(())
        },
        get: |v| list(&v.peers),
    },
    Setting {
        name: "trackers",
        doc: "trackers, \"HOST:PORT\" (none by default: run your own with `clearskies tracker`)",
        env: "CLEARSKIES_TRACKERS",
        default: "",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.trackers = parse::addresses(raw)?;
            Ok(())
        },
        get: |v| list(&v.trackers),
    },
    Setting {
        name: "port_mapping",
        doc: "ask the router to forward the peer port (NAT-PMP, else UPnP IGD), renewed while running, removed at stop",
        env: "CLEARSKIES_PORT_MAPPING",
        default: "true",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.port_mapping = parse::boolean(raw)?;
            Ok(())
        },
        get: |v| toml::Value::Boolean(v.port_mapping),
    },
    Setting {
        name: "stun_servers",
        doc: "STUN servers, \"HOST:PORT\", that tell this computer its public UDP address and NAT type (\"off\": none)",
        env: "CLEARSKIES_STUN_SERVERS",
        default: "stun.l.google.com:19302,stun.cloudflare.com:3478",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.stun_servers = parse::addresses_or_off(raw)?;
            Ok(())
        },
        get: |v| list(&v.stun_servers),
    },
    Setting {
        name: "lan_discovery",
        doc: "find peers on the LAN by UDP broadcast",
        env: "CLEARSKIES_LAN_DISCOVERY",
        default: "true",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.lan_discovery = parse::boolean(raw)?;
            Ok(())
        },
        get: |v| toml::Value::Boolean(v.lan_discovery),
    },
    Setting {
        name: "broadcast_address",
        doc: "where LAN broadcasts go",
        env: "CLEARSKIES_BROADCAST_ADDRESS",
        default: "255.255.255.255",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.broadcast_address = parse::ip(raw)?;
            Ok(())
        },
        get: |v| text(v.broadcast_address),
    },
    Setting {
        name: "broadcast_port",
        doc: "the LAN broadcast port",
        env: "CLEARSKIES_BROADCAST_PORT",
        default: "60106",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.broadcast_port = port(raw)?;
            Ok(())
        },
        get: |v| int(v.broadcast_port),
    },
    Setting {
        name: "metrics_address",
        doc: "where /metrics and /health are served, IP:PORT, or \"off\"",
        env: "CLEARSKIES_METRICS_ADDRESS",
        // `crate::metrics::DEFAULT_PORT` (checked by a test).
        default: "127.0.0.1:49222",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.metrics_address = parse::address_or_off(raw)?;
            Ok(())
        },
        get: |v| v.metrics_address.map_or_else(|| text("off"), text),
    },
    Setting {
        name: "web_https_address",
        doc: "where the web interface is served over HTTPS to other computers, IP:PORT, or \"off\"; needs a password (clearskies web-password)",
        env: "CLEARSKIES_WEB_HTTPS_ADDRESS",
        default: "off",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.web_https_address = parse::address_or_off(raw)?;
            Ok(())
        },
        get: |v| v.web_https_address.map_or_else(|| text("off"), text),
    },
    Setting {
        name: "web_tls_cert",
        doc: "the HTTPS certificate chain, a PEM file (empty: a self-signed certificate kept in the data directory)",
        env: "CLEARSKIES_WEB_TLS_CERT",
        default: "",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.web_tls_cert = parse::file_path(raw)?;
            Ok(())
        },
        get: |v| text(&v.web_tls_cert),
    },
    Setting {
        name: "web_tls_key",
        doc: "the HTTPS certificate's private key, a PEM file (with web_tls_cert)",
        env: "CLEARSKIES_WEB_TLS_KEY",
        default: "",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.web_tls_key = parse::file_path(raw)?;
            Ok(())
        },
        get: |v| text(&v.web_tls_key),
    },
    Setting {
        name: "upload_limit",
        doc: "bytes per second sent to peers, for the whole daemon (0: no limit)",
        env: "CLEARSKIES_UPLOAD_LIMIT",
        default: "0",
        applies: Applies::RuntimeBy(set_limits),
        set: |v, raw| {
            v.upload_limit = parse::bytes(raw, RATE)?;
            Ok(())
        },
        get: |v| int(v.upload_limit),
    },
    Setting {
        name: "download_limit",
        doc: "bytes per second received from peers, for the whole daemon (0: no limit)",
        env: "CLEARSKIES_DOWNLOAD_LIMIT",
        default: "0",
        applies: Applies::RuntimeBy(set_limits),
        set: |v, raw| {
            v.download_limit = parse::bytes(raw, RATE)?;
            Ok(())
        },
        get: |v| int(v.download_limit),
    },
    Setting {
        name: "gzip_level",
        doc: "zlib level of the gzip extension, 1-9; 0 does not offer gzip (applies to new connections)",
        env: "CLEARSKIES_GZIP_LEVEL",
        default: "6",
        applies: Applies::Runtime,
        set: |v, raw| {
            v.gzip_level = parse::int(raw, 0, 9, GZIP)?;
            Ok(())
        },
        get: |v| int(v.gzip_level),
    },
    Setting {
        name: "auth_attempts_per_minute",
        doc: "attempts with access codes or passwords allowed per minute per source and per code",
        env: "CLEARSKIES_AUTH_ATTEMPTS_PER_MINUTE",
        // `crate::listener::throttle::DEFAULT_PER_MINUTE` (checked by a test).
        default: "10",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.auth_attempts_per_minute = parse::int(raw, 1, u32::MAX.into(), "a number of attempts, at least 1")?;
            Ok(())
        },
        get: |v| int(v.auth_attempts_per_minute),
    },
    Setting {
        name: "mass_delete_percent",
        doc: "deleting more than this percentage of a share's files at once waits for confirm-deletes (100: never)",
        env: "CLEARSKIES_MASS_DELETE_PERCENT",
        default: "50",
        applies: Applies::Runtime,
        set: |v, raw| {
            v.mass_delete_percent = parse::int(raw, 1, 100, "a percentage 1-100 (100: never hold deletions)")?;
            Ok(())
        },
        get: |v| int(v.mass_delete_percent),
    },
    Setting {
        name: "min_free_space",
        doc: "space downloads leave free on a share's filesystem: a percentage (\"1%\") or a size (\"500M\")",
        env: "CLEARSKIES_MIN_FREE_SPACE",
        default: "1%",
        applies: Applies::Runtime,
        set: |v, raw| {
            v.min_free_space = parse::min_free(raw)?;
            Ok(())
        },
        get: |v| match v.min_free_space {
            MinFree::Percent(p) => text(format!("{p}%")),
            MinFree::Bytes(b) => int(b),
        },
    },
    Setting {
        name: "full_scan_interval",
        doc: "seconds between full scans of a share that cannot be watched with inotify",
        env: "CLEARSKIES_FULL_SCAN_INTERVAL",
        default: "300",
        // Read when a share's watch fails and its periodic scan is set up.
        applies: Applies::AtStart,
        set: |v, raw| {
            v.full_scan_interval = parse::int(raw, 1, i64::MAX as u64, "a number of seconds, at least 1")?;
            Ok(())
        },
        get: |v| int(v.full_scan_interval),
    },
    Setting {
        name: "scan_hashers",
        doc: "threads that hash changed files during a scan (0: one per core, at most 4; 1 suits a spinning disk, where reading several large files at once makes it seek)",
        env: "CLEARSKIES_SCAN_HASHERS",
        default: "0",
        // Read by each scan.
        applies: Applies::Runtime,
        set: |v, raw| {
            v.scan_hashers = parse::int(raw, 0, 64, "a number of threads, 0-64 (0: one per core, at most 4)")?;
            Ok(())
        },
        get: |v| int(v.scan_hashers),
    },
    Setting {
        name: "versions_keep_days",
        doc: "days a file that a peer's change replaced or deleted stays in the share's .clearskies/versions (0: versions are not kept)",
        env: "CLEARSKIES_VERSIONS_KEEP_DAYS",
        default: "30",
        applies: Applies::Runtime,
        set: |v, raw| {
            v.versions_keep_days = parse::int(raw, 0, 36_500, "a number of days 0-36500 (0: keep no versions)")?;
            Ok(())
        },
        get: |v| int(v.versions_keep_days),
    },
    Setting {
        name: "versions_max_size",
        doc: "most space one share's versions take; the oldest go first (\"10G\"; 0: no cap)",
        env: "CLEARSKIES_VERSIONS_MAX_SIZE",
        default: "10G",
        applies: Applies::Runtime,
        set: |v, raw| {
            v.versions_max_size = parse::bytes(raw, "a size like 500M or 10G (0: no cap)")?;
            Ok(())
        },
        get: |v| int(v.versions_max_size),
    },
    Setting {
        name: "device_name",
        doc: "the name peers see for this daemon in `peers` and in conflict copies (empty: the host name)",
        env: "CLEARSKIES_DEVICE_NAME",
        default: "",
        applies: Applies::AtStart,
        set: |v, raw| {
            v.device_name = parse::device_name(raw)?;
            Ok(())
        },
        get: |v| text(&v.device_name),
    },
    Setting {
        name: "peers_gone_after",
        doc: "seconds without any connected peer after which a share is reported in status, /health (unhealthy) and metrics; 0: never",
        env: "CLEARSKIES_PEERS_GONE_AFTER",
        default: "86400",
        applies: Applies::Runtime,
        set: |v, raw| {
            v.peers_gone_after = parse::int(raw, 0, i64::MAX as u64, "a number of seconds (0: never)")?;
            Ok(())
        },
        get: |v| int(v.peers_gone_after),
    },
];

fn port(raw: Raw<'_>) -> Result<u16, Expected> {
    parse::int(raw, 0, u16::MAX.into(), PORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_read() {
        let mut names = std::collections::BTreeSet::new();
        for s in SETTINGS {
            let mut v = Values::default();
            assert!((s.set)(&mut v, Raw::Text(s.default)).is_ok(), "{}", s.name);
            assert!(names.insert(s.name), "{} twice", s.name);
            assert_eq!(s.env, format!("CLEARSKIES_{}", s.name.to_uppercase()));
            assert!(!s.doc.is_empty());
        }
        let v = Values::default();
        assert_eq!(v.metrics_address.map(|a| a.port()), Some(crate::metrics::DEFAULT_PORT));
        assert_eq!(v.auth_attempts_per_minute, crate::listener::throttle::DEFAULT_PER_MINUTE);
        assert_eq!(v.gzip_level, super::super::DEFAULT_GZIP_LEVEL);
        assert_eq!(v.mass_delete_percent, super::super::DEFAULT_MASS_DELETE_PERCENT);
        assert_eq!(v.min_free_space, super::super::DEFAULT_MIN_FREE);
        assert_eq!(v.full_scan_interval, super::super::DEFAULT_FULL_SCAN_INTERVAL);
        assert_eq!(v.lan(), Some("255.255.255.255:60106".parse().unwrap()));
        assert_eq!(v.listen(), "[::]:49221".parse().unwrap());
    }

    #[test]
    fn settings_reference_is_generated_from_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/settings.md");
        let generated = markdown();
        if std::env::var_os("CLEARSKIES_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == generated, "docs/settings.md is not what the table makes: run with CLEARSKIES_BLESS=1");
        assert!(include_str!("../../../README.md").contains("docs/settings.md"), "README.md links the reference");
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../../../README.md");
        for s in SETTINGS {
            assert!(readme.contains(&format!("`{}`", s.name)), "README.md does not document {}", s.name);
            assert!(readme.contains(&format!("`{}`", s.env)), "README.md does not name {}", s.env);
        }
    }

    #[test]
    fn a_value_shown_reads_back_the_same() {
        let mut v = Values::default();
        let set = |v: &mut Values, name: &str, text: &str| (setting(name).unwrap().set)(v, Raw::Text(text));
        set(&mut v, "peers", "a:1, b:2").unwrap();
        set(&mut v, "min_free_space", "500M").unwrap();
        set(&mut v, "metrics_address", "off").unwrap();
        set(&mut v, "upload_limit", "2Mi").unwrap();
        for s in SETTINGS {
            let shown = (s.get)(&v);
            let mut w = Values::default();
            (s.set)(&mut w, Raw::Toml(&shown)).unwrap_or_else(|e| panic!("{}: {shown} is not {e}", s.name));
            assert_eq!((s.get)(&w), shown, "{}", s.name);
        }
        assert_eq!(v.peers, ["a:1", "b:2"]);
        assert_eq!(v.upload_limit, 2 << 20);
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let mut v = Values::default();
        let set = |v: &mut Values, name: &str, raw: Raw<'_>| (setting(name).unwrap().set)(v, raw);
        assert_eq!(set(&mut v, "gzip_level", Raw::Text("11")), Err(GZIP));
        assert_eq!(set(&mut v, "listen_port", Raw::Text("65536")), Err(PORT));
        assert!(set(&mut v, "upload_limit", Raw::Text("lots")).unwrap_err().contains("whole number"));
        assert!(set(&mut v, "peers", Raw::Text("nohost")).is_err());
        assert!(set(&mut v, "mass_delete_percent", Raw::Toml(&toml::Value::Integer(0))).is_err());
        assert!(set(&mut v, "lan_discovery", Raw::Toml(&toml::Value::Integer(1))).is_err());
        assert_eq!(v, Values::default(), "nothing changed");
    }
}
