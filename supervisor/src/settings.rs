//! `clearskies config get` and `config set`: the daemon's settings, where each value comes
//! from, and changing one.

use clearskies_actors::config::parse::toml_to_json;
use clearskies_actors::config::{setting, Raw, Values};
use clearskies_actors::control::cmd::{ConfigAnswer, ConfigValue, GetConfigValue, Request, SetConfigValue};
use serde_json::Value;

use crate::client::answer_as;
use crate::config::{Config, CONFIG_FILE};
use crate::daemon::{connect, limit};
use crate::out;

/// `clearskies config get [KEY]`.
pub(crate) fn config_get(config: &Config, key: Option<&str>, json: bool) -> anyhow::Result<()> {
    let answer = match key {
        Some(key) => {
            connect(config)?.request(&Request::GetConfigValue(GetConfigValue { key: Some(key.to_owned()) }))?
        }
        None => connect(config)?.request(&Request::GetConfig)?,
    };
    if json {
        return out(&answer.to_string());
    }
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if key.is_some() {
        let ConfigValue { value } = answer_as(&answer)?;
        return out(&show(&value));
    }
    let ConfigAnswer { config: all, sources } = answer_as(&answer)?;
    out(&settings_listing(&all, &sources, show))
}

/// `config get`'s lines: each setting as `key = value`, and after a `#` where the value comes
/// from (`default`, `config.toml` or its environment variable) and, for `listen_port`, the
/// port in use when the OS picked it (`listen`, the address in use, is not a setting: it is
/// shown there, not as a line of its own).
fn settings_listing(
    all: &serde_json::Map<String, Value>,
    sources: &clearskies_actors::config::Sources,
    show: impl Fn(&Value) -> String,
) -> String {
    use clearskies_actors::config::Source;
    let lines: Vec<(String, String)> = clearskies_actors::config::SETTINGS
        .iter()
        .filter_map(|s| {
            let value = all.get(s.name)?;
            let mut note = match sources.get(s.name) {
                Some(Source::Default) => "default".to_owned(),
                Some(Source::File) => CONFIG_FILE.to_owned(),
                Some(Source::Environment) => s.env.to_owned(),
                None => String::new(),
            };
            if s.name == "listen_port" {
                if let Some(in_use) = all.get("listen").and_then(Value::as_str) {
                    let port = in_use.rsplit_once(':').map_or(in_use, |(_, p)| p);
                    if port != show(value) {
                        note = format!("{note}; in use: {port}").trim_start_matches("; ").to_owned();
                    }
                }
            }
            Some((format!("{} = {}", s.name, show(value)), note))
        })
        .collect();
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let line = |(l, note): &(String, String)| {
        if note.is_empty() {
            l.clone()
        } else {
            format!("{l:width$}  # {note}")
        }
    };
    lines.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// `clearskies config set KEY VALUE`: the value is read as its environment variable would be
/// (`500k`, `a:1,b:2`, `1%`…) and checked here; the daemon saves it and applies it at once
/// or says it takes effect at the next start (`needs_restart`, an error: it is not in effect).
pub(crate) fn config_set(config: &Config, key: &str, value: &str) -> anyhow::Result<()> {
    let v = match setting(key) {
        Some(s) => {
            let mut scratch = Values::default();
            (s.set)(&mut scratch, Raw::Text(value))
                .map_err(|expected| anyhow::anyhow!("{key}: {value:?} is not {expected}"))?;
            toml_to_json(&(s.get)(&scratch))
        }
        // Not a setting: the daemon says so.
        None => serde_json::from_str(value).unwrap_or_else(|_| Value::from(value)),
    };
    let mut client = connect(config)?;
    // Where the value in effect comes from now: an environment variable wins over
    // config.toml at every start, which the user should hear about.
    let from_env = setting(key).filter(|_| {
        client
            .request_as::<ConfigAnswer>(&Request::GetConfig)
            .is_ok_and(|a| a.sources.get(key) == Some(&clearskies_actors::config::Source::Environment))
    });
    let request = SetConfigValue { key: Some(key.to_owned()), value: Some(v.clone()) };
    let done = client.request(&Request::SetConfigValue(request));
    if let Some(s) = from_env {
        let now = if s.applies.is_runtime() { " (the new value applies now, until then)" } else { "" };
        eprintln!(
            "clearskies: note: {} is set in the daemon's environment: it overrides config.toml when the daemon \
             starts{now}",
            s.env
        );
    }
    done?;
    out(&format!("{key} = {} (saved in config.toml)", show_value(key, &v)))
}

fn show_value(key: &str, v: &Value) -> String {
    match (key, v.as_u64()) {
        ("upload_limit" | "download_limit", Some(n)) => format!("{n} ({})", limit(n)),
        _ => v.to_string(),
    }
}
