//! How a command's fields are read: as leniently as the control socket always has. A field
//! of the wrong type counts as absent (`lenient`), so a malformed command gets the same
//! answer as one without that field; where "present but wrong" must be told apart, the field
//! is a [`Checked`].

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A field of the wrong type reads as `None` (use with `#[serde(default)]`).
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// The strings of an array (other elements are skipped); anything else reads as empty.
pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => {
            a.into_iter().filter_map(|v| if let Value::String(s) = v { Some(s) } else { None }).collect()
        }
        _ => Vec::new(),
    })
}

/// A present field is `Some`, even `null` (use with `#[serde(default)]`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A field's value, or why it is not a `T` (serde's words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked<T> {
    /// A `T`.
    Valid(T),
    /// Something else.
    Invalid(String),
}

impl<T> From<T> for Checked<T> {
    fn from(t: T) -> Self {
        Checked::Valid(t)
    }
}

impl<T: Serialize> Serialize for Checked<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Checked::Valid(t) => t.serialize(s),
            Checked::Invalid(_) => s.serialize_none(),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::from_value(Value::deserialize(d)?) {
            Ok(t) => Checked::Valid(t),
            Err(e) => Checked::Invalid(e.to_string()),
        })
    }
}
