//! Access codes: `create_access_code`, `list_access_codes` and `cancel_access_code`.

use serde::{Deserialize, Serialize};

use super::{absolute_path, custom_credentials, field, reply, to_json, Answer, Checked, CommandError, ErrorCode};
use crate::access::messages::{self, CodeEntry, DEFAULT_CODE_LIFETIME};
use crate::control::ControlTargets;
use crate::share::registry::{CodeRef, Lifetime};

/// `list_access_codes`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Codes {
    /// Every code issued and not cancelled.
    pub codes: Vec<CodeEntry>,
}

pub(super) async fn list(targets: &ControlTargets) -> Answer {
    match targets.list_codes.send(messages::ListCodes).await {
        Ok(Ok(codes)) => to_json(&Codes { codes }),
        other => reply(other),
    }
}

/// `create_access_code`: a generated code, or a `username` and `password`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateAccessCode {
    /// The shared directory.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `read_write` (default), `read_only` or `untrusted`.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Seconds it stays valid; `null` for never; absent for 24 hours.
    #[serde(default, deserialize_with = "field::present", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<Checked<Option<i64>>>,
    /// Whether more than one peer may join with it.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub multi_use: Option<bool>,
    /// A custom username (with `password`).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A custom password (with `username`).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl CreateAccessCode {
    /// How long the code stays valid.
    pub(super) fn lifetime(&self) -> Result<Lifetime, CommandError> {
        match &self.expires_in {
            None => Ok(Lifetime::Secs(DEFAULT_CODE_LIFETIME)),
            Some(Checked::Valid(None)) => Ok(Lifetime::Never),
            Some(Checked::Valid(Some(s))) if *s > 0 => Ok(Lifetime::Secs(*s)),
            Some(_) => Err(CommandError::new(
                ErrorCode::BadExpiry,
                "\"expires_in\" must be a positive number of seconds, or null for never",
            )),
        }
    }

    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let custom = custom_credentials(self.username.as_ref(), self.password.as_ref());
        let (path, lifetime, custom) = match (absolute_path(self.path.as_deref()), self.lifetime(), custom) {
            (Ok(path), Ok(lifetime), Ok(custom)) => (path, lifetime, custom),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(e),
        };
        let mode = self.mode.unwrap_or_else(|| "read_write".to_owned());
        let multi_use = self.multi_use.unwrap_or(false);
        let msg = messages::CreateAccessCode { path, mode, lifetime, multi_use, custom };
        reply(targets.create_access_code.send(msg).await)
    }
}

/// `cancel_access_code`: by one of `code`, `username` or `access_id` (or its prefix).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CancelAccessCode {
    /// The `SYNC…` code.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The custom username.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The access ID, or its first 8+ hex digits.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub access_id: Option<String>,
}

impl CancelAccessCode {
    /// Which code.
    pub(super) fn which(self) -> Result<CodeRef, CommandError> {
        match (self.code, self.username, self.access_id) {
            (Some(code), None, None) => code
                .parse()
                .map(CodeRef::Code)
                .map_err(|e| CommandError::new(ErrorCode::BadCode, format!("invalid access code: {e}"))),
            (None, Some(username), None) => Ok(CodeRef::Username(username)),
            (None, None, Some(id)) => Ok(CodeRef::IdPrefix(id)),
            _ => Err(CommandError::new(
                ErrorCode::MissingCode,
                "the command needs one of \"code\", \"username\" or \"access_id\"",
            )),
        }
    }

    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let which = self.which()?;
        reply(targets.cancel_code.send(messages::CancelCode(which)).await)
    }
}
