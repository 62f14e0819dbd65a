//! How the settings' values are read: from text (an environment variable, `config set` on
//! the command line) or from a TOML value (`config.toml`, or the control socket's JSON
//! converted with [`json_to_toml`]). Each function returns the phrase that says what was
//! expected when the input does not fit, and the callers put it in context.

use std::net::{IpAddr, SocketAddr};

use super::MinFree;

/// A setting's input.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    /// Text as typed: an environment variable or `clearskies config set KEY VALUE`.
    Text(&'a str),
    /// A value of `config.toml` (or of the control socket, converted).
    Toml(&'a toml::Value),
}

/// What a setting expected when its input did not fit (for "X is not …" messages).
pub type Expected = &'static str;

/// A whole number in `min..=max`, as `T` (whose range holds `min..=max`).
pub(super) fn int<T: TryFrom<u64>>(raw: Raw<'_>, min: u64, max: u64, expected: Expected) -> Result<T, Expected> {
    let n = match raw {
        Raw::Text(t) => t.trim().parse::<u64>().ok(),
        Raw::Toml(toml::Value::Integer(i)) => u64::try_from(*i).ok(),
        Raw::Toml(_) => None,
    };
    n.filter(|n| (min..=max).contains(n)).and_then(|n| T::try_from(n).ok()).ok_or(expected)
}

/// A number of bytes (per second): an integer, or text with unit suffixes ([`parse_rate`]),
/// in `config.toml` (`upload_limit = "1M"`) as in the environment.
pub(super) fn bytes(raw: Raw<'_>, expected: Expected) -> Result<u64, Expected> {
    let n = match raw {
        Raw::Text(t) => parse_rate(t).ok(),
        Raw::Toml(toml::Value::String(t)) => parse_rate(t).ok(),
        Raw::Toml(toml::Value::Integer(i)) => u64::try_from(*i).ok(),
        Raw::Toml(_) => None,
    };
    // config.toml holds signed 64-bit integers.
    n.filter(|n| i64::try_from(*n).is_ok()).ok_or(expected)
}

/// `true` or `false`.
pub(super) fn boolean(raw: Raw<'_>) -> Result<bool, Expected> {
    match raw {
        Raw::Text(t) => t.trim().parse().ok(),
        Raw::Toml(toml::Value::Boolean(b)) => Some(*b),
        Raw::Toml(_) => None,
    }
    .ok_or("true or false")
}

/// A string (text as it is, TOML a string).
fn text(raw: Raw<'_>) -> Option<&str> {
    match raw {
        Raw::Text(t) => Some(t.trim()),
        Raw::Toml(toml::Value::String(s)) => Some(s),
        Raw::Toml(_) => None,
    }
}

/// Longest `device_name`, in bytes.
pub const MAX_DEVICE_NAME: usize = 64;

/// `device_name`: up to 64 bytes of printable text (no control characters, no `/`); empty
/// means the host name.
/// A file path (empty: none): absolute, as the daemon's working directory is not the user's.
pub(super) fn file_path(raw: Raw<'_>) -> Result<String, Expected> {
    const EXPECTED: Expected = "an absolute path to a file, or \"\"";
    let t = text(raw).ok_or(EXPECTED)?.trim();
    if t.is_empty() || t.starts_with('/') {
        Ok(t.to_owned())
    } else {
        Err(EXPECTED)
    }
}

pub(super) fn device_name(raw: Raw<'_>) -> Result<String, Expected> {
    const EXPECTED: Expected = "a name of up to 64 bytes without control characters or \"/\"";
    let t = text(raw).ok_or(EXPECTED)?;
    let ok = t.len() <= MAX_DEVICE_NAME && !t.chars().any(|c| c.is_control() || c == '/');
    ok.then(|| t.to_owned()).ok_or(EXPECTED)
}

/// An IP address.
pub(super) fn ip(raw: Raw<'_>) -> Result<IpAddr, Expected> {
    text(raw).and_then(|t| t.parse().ok()).ok_or("an IP address")
}

/// `IP:PORT`, or `off`.
pub(super) fn address_or_off(raw: Raw<'_>) -> Result<Option<SocketAddr>, Expected> {
    const EXPECTED: Expected = "IP:PORT or \"off\"";
    match text(raw) {
        Some("off") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| EXPECTED),
        None => Err(EXPECTED),
    }
}

/// A list of `HOST:PORT`: comma-separated text, or a TOML array of strings.
pub(super) fn addresses(raw: Raw<'_>) -> Result<Vec<String>, Expected> {
    const EXPECTED: Expected = "a list of HOST:PORT";
    let list: Vec<String> = match raw {
        Raw::Text(t) => t.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        Raw::Toml(toml::Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<_>>().ok_or(EXPECTED)?
        }
        Raw::Toml(_) => return Err(EXPECTED),
    };
    let ok =
        |p: &String| p.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if list.iter().all(ok) {
        Ok(list)
    } else {
        Err(EXPECTED)
    }
}

/// A list of `HOST:PORT` as [`addresses`] reads it, or `off` (also `[]` in the file) for
/// none: an empty environment variable means "not set" and could not turn a default list off.
pub(super) fn addresses_or_off(raw: Raw<'_>) -> Result<Vec<String>, Expected> {
    match raw {
        Raw::Text(t) if t.trim() == "off" => Ok(Vec::new()),
        Raw::Toml(toml::Value::String(t)) if t.trim() == "off" => Ok(Vec::new()),
        other => addresses(other).map_err(|_| "a list of HOST:PORT, or \"off\""),
    }
}

/// `min_free_space`: a percentage (`"1%"`, at most 50) or a size (`"500M"`, or bytes).
pub(super) fn min_free(raw: Raw<'_>) -> Result<MinFree, Expected> {
    const EXPECTED: Expected = "a percentage up to 50 (\"1%\") or a size like \"500M\"";
    match raw {
        Raw::Toml(toml::Value::Integer(n)) => u64::try_from(*n).map(MinFree::Bytes).map_err(|_| EXPECTED),
        raw => text(raw).and_then(parse_min_free).ok_or(EXPECTED),
    }
}

/// `min_free_space` as text: `1%` (0–50) or a size (`500M`).
pub fn parse_min_free(text: &str) -> Option<MinFree> {
    match text.trim().strip_suffix('%') {
        Some(p) => p.trim().parse().ok().filter(|p| *p <= 50).map(MinFree::Percent),
        None => parse_rate(text).ok().filter(|b| *b < 1 << 63).map(MinFree::Bytes),
    }
}

/// A number of bytes for people: `950 B`, `12.3 kB`, `4.1 MB`, `2.0 GB` (powers of 1000).
pub fn show_bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // (one decimal shown)
    let f = n as f64;
    match n {
        b if b >= 1_000_000_000_000 => format!("{:.1} TB", f / 1e12),
        b if b >= 1_000_000_000 => format!("{:.1} GB", f / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", f / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", f / 1e3),
        b => format!("{b} B"),
    }
}

/// A rate as the user writes it: a whole number with an optional k/M/G (×1000) or
/// Ki/Mi/Gi (×1024) suffix, and an optional trailing `B` or `B/s`.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t.strip_suffix('B').unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "{text:?} is not a whole number of bytes per second (e.g. 500000, 500k, 2M, 0 for no limit)"
        ));
    }
    let factor: u64 = match suffix.trim() {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use k, M, G, Ki, Mi or Gi)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a whole number of bytes per second"))?;
    n.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

/// A control request's JSON value as `config.toml` would hold it (`None`: TOML has no such
/// value, e.g. `null` or an object).
pub fn json_to_toml(value: &serde_json::Value) -> Option<toml::Value> {
    use serde_json::Value as J;
    Some(match value {
        J::Bool(b) => toml::Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        J::String(s) => toml::Value::String(s.clone()),
        J::Array(a) => toml::Value::Array(a.iter().map(json_to_toml).collect::<Option<_>>()?),
        J::Null | J::Object(_) => return None,
    })
}

/// A `config.toml` value as the control socket shows it.
pub fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => J::from(*f),
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
        toml::Value::Datetime(d) => J::String(d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_toml_takes_rates_as_numbers_or_as_text() {
        let toml = |text: &str| text.parse::<toml::Table>().unwrap()["v"].clone();
        for (value, bytes) in
            [("1000000", 1_000_000), ("\"1M\"", 1_000_000), ("\"500k\"", 500_000), ("\"2Mi\"", 2 << 20)]
        {
            assert_eq!(super::bytes(Raw::Toml(&toml(&format!("v = {value}"))), "x"), Ok(bytes), "{value}");
        }
        assert!(super::bytes(Raw::Toml(&toml("v = \"fast\"")), "x").is_err());
        assert!(super::bytes(Raw::Toml(&toml("v = -1")), "x").is_err());
    }

    #[test]
    fn rates_take_units() {
        assert_eq!(parse_rate("0").unwrap(), 0);
        assert_eq!(parse_rate("1500").unwrap(), 1500);
        assert_eq!(parse_rate("500k").unwrap(), 500_000);
        assert_eq!(parse_rate("2M").unwrap(), 2_000_000);
        assert_eq!(parse_rate("2MB/s").unwrap(), 2_000_000);
        assert_eq!(parse_rate("1Mi").unwrap(), 1 << 20);
        assert_eq!(parse_rate(" 3 Gi ").unwrap(), 3 << 30);
        for bad in ["", "lots", "-5", "1.5M", "5 parsecs", "99999999999999999999", "18446744073709551615G"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn min_free_space_is_a_percentage_or_a_size() {
        assert_eq!(parse_min_free("1%"), Some(MinFree::Percent(1)));
        assert_eq!(parse_min_free(" 5 %"), Some(MinFree::Percent(5)));
        assert_eq!(parse_min_free("500M"), Some(MinFree::Bytes(500_000_000)));
        assert_eq!(parse_min_free("2Gi"), Some(MinFree::Bytes(2 << 30)));
        assert_eq!(parse_min_free("0"), Some(MinFree::Bytes(0)));
        for bad in ["51%", "x%", "lots", "-1"] {
            assert!(parse_min_free(bad).is_none(), "{bad}");
        }
        assert_eq!(MinFree::Percent(1).bytes(1000), 10);
        assert_eq!(MinFree::Bytes(7).bytes(1000), 7);
    }

    #[test]
    fn json_and_toml_values_convert_both_ways() {
        let json = serde_json::json!([1, "a", true, ["x:1"]]);
        let toml = json_to_toml(&json).unwrap();
        assert_eq!(toml_to_json(&toml), json);
        assert!(json_to_toml(&serde_json::Value::Null).is_none());
        assert!(json_to_toml(&serde_json::json!({"a": 1})).is_none());
    }
}
