//! Validated configuration: where the data lives and the daemon's settings.
//!
//! The data dir is `$CLEARSKIES_HOME`, else `$XDG_DATA_HOME/clearskies`, else
//! `~/.local/share/clearskies`. It holds `config.toml` (optional; unknown keys are an error),
//! `control` (the socket), `monitor.pid`, `worker.pid` and `log`. Settings come from
//! `config.toml`, each overridden by its `CLEARSKIES_*` environment variable
//! (`CLEARSKIES_LISTEN_PORT`, `CLEARSKIES_METRICS_ADDRESS`, …); which settings there are,
//! their defaults and formats is the table `clearskies_actors::config::SETTINGS`.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
#[cfg(test)]
use clearskies_actors::config::MinFree;
use clearskies_actors::config::{setting, Raw, Source, Sources, Values, SETTINGS};

/// The file in the data dir that holds the configuration.
pub(crate) const CONFIG_FILE: &str = clearskies_actors::config::CONFIG_FILE;

/// Everything the binary needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) data_dir: PathBuf,
    /// Every setting (`clearskies_actors::config::SETTINGS`).
    pub(crate) values: Values,
    /// Where each value came from.
    pub(crate) sources: Sources,
    /// Where peers connect.
    pub(crate) listen: SocketAddr,
    /// Where `/metrics` and `/health` are served (`None`: off).
    pub(crate) metrics: Option<SocketAddr>,
}

impl Config {
    /// Resolves the data dir from the environment and reads `config.toml` if present.
    pub(crate) fn load() -> anyhow::Result<Self> {
        let data_dir = crate::shared::data_dir()?;
        let path = data_dir.join(CONFIG_FILE);
        let file: toml::Table = match fs::read_to_string(&path) {
            Ok(text) => text.parse().with_context(|| format!("invalid {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (values, sources) = read_settings(&file, env)
            .with_context(|| format!("invalid settings ({} or the environment)", path.display()))?;
        Ok(Config { data_dir, listen: values.listen(), metrics: values.metrics_address, values, sources })
    }

    pub(crate) fn control_socket(&self) -> PathBuf {
        self.data_dir.join(crate::shared::CONTROL_SOCKET)
    }

    pub(crate) fn pid_file(&self) -> PathBuf {
        self.data_dir.join("worker.pid")
    }

    pub(crate) fn monitor_pid_file(&self) -> PathBuf {
        self.data_dir.join(crate::shared::MONITOR_PID_FILE)
    }

    pub(crate) fn log_file(&self) -> PathBuf {
        self.data_dir.join(crate::shared::LOG_FILE)
    }

    /// Creates the data dir (mode 0700) if needed.
    pub(crate) fn ensure_data_dir(&self) -> anyhow::Result<()> {
        crate::shared::create_private_dir(&self.data_dir)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Every setting: its environment variable if set (`env` gives it), else `config.toml`'s
/// value, else its default; and which of the three it was. A key `config.toml` should not
/// have is an error.
fn read_settings(file: &toml::Table, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<(Values, Sources)> {
    if let Some(key) = file.keys().find(|k| setting(k).is_none()) {
        let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        bail!("unknown setting `{key}` in {CONFIG_FILE}, expected one of {}", known.join(", "));
    }
    let mut values = Values::default();
    let mut sources = Sources::new();
    for s in SETTINGS {
        let source = if let Some(text) = env(s.env) {
            (s.set)(&mut values, Raw::Text(&text))
                .map_err(|expected| anyhow!("{}={text:?} is not {expected}", s.env))?;
            Source::Environment
        } else if let Some(value) = file.get(s.name) {
            (s.set)(&mut values, Raw::Toml(value))
                .map_err(|expected| anyhow!("{} = {value} in {CONFIG_FILE} is not {expected}", s.name))?;
            Source::File
        } else {
            Source::Default
        };
        sources.insert(s.name.to_owned(), source);
    }
    Ok((values, sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn every_setting_is_read_from_the_file_and_the_environment() {
        let file = table(
            "listen_port = 4000\nlisten_address = \"127.0.0.1\"\npeers = [\"a:1\"]\ntrackers = []\n\
             lan_discovery = false\nbroadcast_address = \"10.0.0.255\"\nbroadcast_port = 6000\n\
             metrics_address = \"off\"\nupload_limit = 1000\ndownload_limit = 2000\ngzip_level = 0\n\
             auth_attempts_per_minute = 3\nmass_delete_percent = 100\nmin_free_space = \"500M\"\n\
             full_scan_interval = 60\nscan_hashers = 1\nversions_keep_days = 7\nversions_max_size = \"1G\"\n\
             device_name = \"nas\"\npeers_gone_after = 0\nweb_https_address = \"off\"\nweb_tls_cert = \"/etc/cs/cert.pem\"\n\
             web_tls_key = \"/etc/cs/key.pem\"\nport_mapping = false\nstun_servers = [\"stun.example:3478\"]\n",
        );
        assert_eq!(file.len(), SETTINGS.len(), "the file names every setting");
        let (v, sources) = read_settings(&file, |_| None).unwrap();
        assert!(sources.values().all(|s| *s == Source::File), "{sources:?}");
        assert_eq!(v.listen(), "127.0.0.1:4000".parse().unwrap());
        assert_eq!((v.peers.as_slice(), v.lan(), v.metrics_address), (&["a:1".to_owned()][..], None, None));
        assert_eq!((v.upload_limit, v.download_limit, v.gzip_level), (1000, 2000, 0));
        assert_eq!((v.auth_attempts_per_minute, v.mass_delete_percent), (3, 100));
        assert_eq!((v.min_free_space, v.full_scan_interval), (MinFree::Bytes(500_000_000), 60));
        assert_eq!(v.scan_hashers, 1);
        assert_eq!(v.broadcast_address, "10.0.0.255".parse::<std::net::IpAddr>().unwrap());
        assert_eq!((v.versions_keep_days, v.versions_max_size), (7, 1_000_000_000));
        assert_eq!((v.device_name.as_str(), v.peers_gone_after), ("nas", 0));
        assert_eq!((v.web_https_address, v.web_tls_cert.as_str()), (None, "/etc/cs/cert.pem"));
        assert_eq!((v.port_mapping, v.stun_servers.as_slice()), (false, &["stun.example:3478".to_owned()][..]));

        // The environment wins, in the README's formats.
        let env = |name: &str| match name {
            "CLEARSKIES_PEERS" => Some("b:2, c:3".to_owned()),
            "CLEARSKIES_UPLOAD_LIMIT" => Some("500k".to_owned()),
            "CLEARSKIES_MIN_FREE_SPACE" => Some("5%".to_owned()),
            "CLEARSKIES_LAN_DISCOVERY" => Some("true".to_owned()),
            "CLEARSKIES_STUN_SERVERS" => Some("off".to_owned()),
            "CLEARSKIES_SCAN_HASHERS" => Some("3".to_owned()),
            _ => None,
        };
        let (v, sources) = read_settings(&file, env).unwrap();
        assert_eq!((sources["peers"], sources["gzip_level"]), (Source::Environment, Source::File));
        assert_eq!(v.peers, ["b:2", "c:3"]);
        assert_eq!((v.upload_limit, v.min_free_space), (500_000, MinFree::Percent(5)));
        assert_eq!(v.lan(), Some("10.0.0.255:6000".parse().unwrap()));
        assert!(v.stun_servers.is_empty(), "off turns the default list off");
        assert_eq!(v.scan_hashers, 3);
        let (defaults, sources) = read_settings(&toml::Table::new(), |_| None).unwrap();
        assert_eq!(defaults, Values::default());
        assert!(sources.len() == SETTINGS.len() && sources.values().all(|s| *s == Source::Default));
        // Rates in config.toml as config set and the README write them.
        let (v, _) = read_settings(&table("upload_limit = \"1M\"\ndownload_limit = \"2Mi\""), |_| None).unwrap();
        assert_eq!((v.upload_limit, v.download_limit), (1_000_000, 2 << 20));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let err = |file: &str, env: Option<(&str, &str)>| {
            let env = move |name: &str| env.filter(|(n, _)| *n == name).map(|(_, v)| v.to_owned());
            read_settings(&table(file), env).unwrap_err().to_string()
        };
        assert!(err("upload_speed = 1", None).contains("unknown setting `upload_speed`"));
        assert!(err("gzip_level = 11", None).contains("zlib level"));
        assert!(err("min_free_space = \"51%\"", None).contains("min_free_space"));
        assert!(err("peers = [\"nohost\"]", None).contains("HOST:PORT"));
        assert!(err("mass_delete_percent = 0", None).contains("1-100"));
        assert!(err("scan_hashers = 65", None).contains("0-64"));
        assert!(err("device_name = \"a/b\"", None).contains("without control characters"));
        assert!(err("", Some(("CLEARSKIES_DEVICE_NAME", "x\u{1b}y"))).contains("without control characters"));
        assert!(err("versions_keep_days = -1", None).contains("days"));
        assert!(err("", Some(("CLEARSKIES_LISTEN_PORT", "x"))).contains("CLEARSKIES_LISTEN_PORT=\"x\" is not a port"));
        assert!(err("listen_port = \"4000\"", None).contains("port number"));
    }
}
