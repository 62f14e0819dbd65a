//! Settings: `get_config`, `get_config_value`, `set_config` and `set_config_value`. What
//! the settings are, and which change at runtime, is `crate::config::SETTINGS`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{field, reply, to_json, Answer, CommandError, Done, ErrorCode};
use crate::control::ControlTargets;
use crate::supervisor::messages::{self, GetConfig};

/// `get_config`'s answer: every setting by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigAnswer {
    /// Setting → value.
    pub config: Map<String, Value>,
}

/// `get_config_value`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// The setting's value.
    pub value: Value,
}

pub(super) async fn get_all(targets: &ControlTargets) -> Answer {
    match targets.get_config.send(GetConfig).await {
        Ok(config) => to_json(&ConfigAnswer { config }),
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
        let Ok(config) = targets.get_config.send(GetConfig).await else { return Err(CommandError::unavailable()) };
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
