//! Settings: `get_config`, `get_config_value`, `set_config` and `set_config_value`. What
//! the settings are, and which change at runtime, is `crate::config::SETTINGS`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::info;

use super::{field, reply, to_json, Answer, CommandError, Done, ErrorCode};
use crate::config::{self, Applies, Raw, Setting, Values};
use crate::control::messages::{self, GetConfig};
use crate::control::ControlTargets;

/// The address in use, shown by `get_config` beside the settings (`listen_address` and
/// `listen_port`, the port resolved); not a setting of its own.
const LISTEN: &str = "listen";

/// `get_config`'s answer: every setting by name, and where each value in effect comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigAnswer {
    /// Setting → value.
    pub config: Map<String, Value>,
    /// Setting → `default`, `file` (config.toml) or `environment` (absent from daemons
    /// before it existed).
    #[serde(default, skip_serializing_if = "config::Sources::is_empty")]
    pub sources: config::Sources,
}

/// `get_config_value`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// The setting's value.
    pub value: Value,
}

pub(super) async fn get_all(targets: &ControlTargets) -> Answer {
    match targets.get_config.send(GetConfig).await {
        Ok(answer) => to_json(&answer),
        Err(_) => Err(CommandError::unavailable()),
    }
}

/// `get_config_value`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GetConfigValue {
    /// The setting.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl GetConfigValue {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let Some(key) = self.key else {
            return Err(CommandError::new(ErrorCode::MissingKey, "the command needs a \"key\""));
        };
        let Ok(ConfigAnswer { config, .. }) = targets.get_config.send(GetConfig).await else {
            return Err(CommandError::unavailable());
        };
        match config.get(&key) {
            Some(value) => to_json(&ConfigValue { value: value.clone() }),
            None => Err(CommandError::new(ErrorCode::UnknownKey, format!("there is no setting {key:?}"))),
        }
    }
}

/// `set_config`: several settings at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SetConfig {
    /// Setting → new value.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
}

impl SetConfig {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let Some(config) = self.config else {
            return Err(CommandError::new(ErrorCode::MissingConfig, "the command needs a \"config\" object"));
        };
        set(targets, config).await
    }
}

/// `set_config_value`: one setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SetConfigValue {
    /// The setting.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its new value (as `config.toml` holds it: a number, a string, a list…).
    #[serde(default, deserialize_with = "field::present", skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl SetConfigValue {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let (Some(key), Some(value)) = (self.key, self.value) else {
            return Err(CommandError::new(ErrorCode::MissingKey, "the command needs a \"key\" and a \"value\""));
        };
        set(targets, Map::from_iter([(key, value)])).await
    }
}

async fn set(targets: &ControlTargets, changes: Map<String, Value>) -> Answer {
    reply(targets.set_config.send(messages::SetConfig(changes)).await.map(|r| r.map(|()| Done {})))
}

/// What `get_config` shows: every setting (`config::SETTINGS`) as it is in effect, `listen`
/// (the address in use) and, when it is served, `metrics_address` with its port resolved.
pub fn settings_shown(values: &Values, listen: Option<SocketAddr>, metrics: Option<SocketAddr>) -> Map<String, Value> {
    let mut map: Map<String, Value> =
        config::SETTINGS.iter().map(|s| (s.name.to_owned(), config::parse::toml_to_json(&(s.get)(values)))).collect();
    map.insert(LISTEN.to_owned(), listen.map(|a| a.to_string()).into());
    if let Some(addr) = metrics {
        map.insert("metrics_address".to_owned(), addr.to_string().into());
    }
    map
}

/// A `set_config`'s changes checked against the values in effect, all or nothing: each
/// setting with its value as `config.toml` will hold it.
pub fn check_settings(
    current: &Values,
    changes: &Map<String, Value>,
) -> Result<Vec<(&'static Setting, toml::Value)>, CommandError> {
    let mut next = current.clone();
    let mut checked = Vec::new();
    for (key, value) in changes {
        let Some(setting) = config::setting(key) else {
            if key == LISTEN {
                let message = "listen is the address in use: set listen_address and listen_port";
                return Err(CommandError::new(ErrorCode::NeedsRestart, message));
            }
            return Err(CommandError::new(ErrorCode::UnknownKey, format!("there is no setting {key:?}")));
        };
        config::parse::json_to_toml(value)
            .ok_or("a value config.toml can hold")
            .and_then(|t| (setting.set)(&mut next, Raw::Toml(&t)))
            .map_err(|expected| {
                CommandError::new(ErrorCode::BadValue, format!("{key} must be {expected}, not {value}"))
            })?;
        checked.push((setting, (setting.get)(&next)));
    }
    Ok(checked)
}

/// After checked changes are saved: the runtime ones go into `values` (which the caller then
/// sends to the owners) and to the owners outside the actors; if some take effect only at
/// the next start, the answer says so (`needs_restart`).
pub fn apply_settings(
    values: &mut Values,
    sources: &mut config::Sources,
    saved: &[(&'static Setting, toml::Value)],
) -> Result<(), CommandError> {
    let mut later = Vec::new();
    for (setting, value) in saved {
        if !setting.applies.is_runtime() {
            later.push(format!("{} = {value}", setting.name));
            continue;
        }
        if (setting.set)(values, Raw::Toml(value)).is_ok() {
            if let Applies::RuntimeBy(hand_over) = setting.applies {
                hand_over(values);
            }
            sources.insert(setting.name.to_owned(), config::Source::File);
            info!(setting = setting.name, %value, "setting changed");
        }
    }
    if later.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} saved in config.toml; it takes effect at the next start (clearskies stop, then start)",
        later.join(", ")
    );
    Err(CommandError::new(ErrorCode::NeedsRestart, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_config_lists_every_setting() {
        let listen = "127.0.0.1:4000".parse().ok();
        let shown = settings_shown(&Values::default(), listen, None);
        for s in config::SETTINGS {
            assert!(shown.contains_key(s.name), "{} is not shown", s.name);
        }
        assert_eq!(shown.len(), config::SETTINGS.len() + 1, "{shown:?}");
        assert_eq!(shown["listen"], "127.0.0.1:4000");
        assert_eq!(shown["metrics_address"], "127.0.0.1:49222");
        assert_eq!(shown["min_free_space"], "1%");
        assert_eq!(shown["peers"], serde_json::json!([]));
        let served = settings_shown(&Values::default(), None, "127.0.0.1:5555".parse().ok());
        assert_eq!(served["metrics_address"], "127.0.0.1:5555");
    }

    #[test]
    fn a_restart_only_setting_is_saved_and_the_answer_says_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(config::CONFIG_FILE);
        let mut values = Values::default();
        for (key, value, saved) in [
            ("mass_delete_percent", serde_json::json!(30), "mass_delete_percent = 30"),
            ("listen_port", serde_json::json!(5000), "listen_port = 5000"),
            ("peers", serde_json::json!(["a:1"]), "peers = [\"a:1\"]"),
        ] {
            let checked = check_settings(&values, &Map::from_iter([(key.to_owned(), value)])).unwrap();
            let lines: Vec<_> = checked.iter().map(|(s, v)| (s.name.to_owned(), v.clone())).collect();
            config::save(&file, &lines).unwrap();
            assert!(std::fs::read_to_string(&file).unwrap().contains(saved), "{key} is saved");
            if key == "mass_delete_percent" {
                // Applied at once, into the values the owners are sent.
                assert!(checked[0].0.applies.is_runtime());
                apply_settings(&mut values, &mut config::Sources::new(), &checked).unwrap();
                assert_eq!(values.mass_delete_percent, 30);
                continue;
            }
            let e = apply_settings(&mut values, &mut config::Sources::new(), &checked).unwrap_err();
            assert_eq!(e.error, ErrorCode::NeedsRestart);
            assert!(e.message.contains(key) && e.message.contains("next start"), "{e}");
        }
        assert_eq!(values.listen_port, Values::default().listen_port, "not in effect before a restart");
        assert!(values.peers.is_empty());
    }

    #[test]
    fn bad_changes_are_refused_and_nothing_is_checked_in() {
        let values = Values::default();
        let set = |key: &str, value: Value| check_settings(&values, &Map::from_iter([(key.to_owned(), value)]));
        let e = set("gzip_level", serde_json::json!(11)).unwrap_err();
        assert_eq!(
            e,
            CommandError::new(ErrorCode::BadValue, "gzip_level must be a zlib level 0-9 (0: gzip off), not 11")
        );
        assert_eq!(set("upload_speed", serde_json::json!(1)).unwrap_err().error, ErrorCode::UnknownKey);
        assert_eq!(set("listen", serde_json::json!("x")).unwrap_err().error, ErrorCode::NeedsRestart);
        assert_eq!(set("upload_limit", Value::Null).unwrap_err().error, ErrorCode::BadValue);
        assert_eq!(set("upload_limit", serde_json::json!("fast")).unwrap_err().error, ErrorCode::BadValue);
        // A rate as text is read as config.toml reads it.
        assert_eq!(set("upload_limit", serde_json::json!("500k")).unwrap()[0].1, toml::Value::Integer(500_000));
        let two = Map::from_iter([("download_limit".to_owned(), 5.into()), ("gzip_level".to_owned(), 10.into())]);
        assert!(check_settings(&values, &two).is_err(), "all or nothing");
    }
}
