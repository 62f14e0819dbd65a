//! The web interface's commands: `list_files` (a page of a share's directory, from its
//! index), `web_login` (a one-time login link) and `set_web_password`.

use serde::{Deserialize, Serialize};

use super::{absolute_path, field, reply, Answer, CommandError, ErrorCode};
use crate::control::messages;
use crate::control::ControlTargets;
use crate::share::messages as share_messages;
use crate::shares::messages as shares_messages;

/// Entries a `list_files` page has unless asked otherwise.
pub(super) const DEFAULT_PAGE: usize = 200;

/// `list_files`: `{"path": ROOT, "dir": "a/b", "after": NAME, "limit": N}`. Answers a
/// [`Listing`](share_messages::Listing): `{"entries": [...], "next": NAME|null}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListFiles {
    /// The share's root.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The directory in the share (absent or `""`: the root).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// The previous page's `next`.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Entries at most (1 to 1000; default 200).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

impl ListFiles {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let path = absolute_path(self.path.as_deref())?;
        let limit = self.limit.map_or(DEFAULT_PAGE, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let list = share_messages::ListFiles { dir: self.dir.unwrap_or_default(), after: self.after, limit };
        reply(targets.list_files.send(shares_messages::ListFiles { path, list }).await)
    }
}

/// `web_login`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginLink {
    /// `http://127.0.0.1:PORT/login?token=…`, valid once, for five minutes.
    pub url: String,
}

pub(super) async fn web_login(targets: &ControlTargets) -> Answer {
    reply(targets.web_login.send(messages::WebLogin).await.map(|r| r.map(|url| LoginLink { url })))
}

/// `set_web_password`: `{"password": "…"}` sets it, `{"password": null}` removes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SetWebPassword {
    /// The new password; `null`: none.
    #[serde(default, deserialize_with = "field::present", skip_serializing_if = "Option::is_none")]
    pub password: Option<super::Checked<Option<String>>>,
}

impl SetWebPassword {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let password = match self.password {
            Some(super::Checked::Valid(p)) => p,
            _ => {
                let why = "set_web_password needs a \"password\" (a string, or null to remove it)";
                return Err(CommandError::new(ErrorCode::BadPassword, why));
            }
        };
        reply(targets.web_password.send(messages::SetWebPassword(password)).await.map(|r| r.map(|()| super::Done {})))
    }
}
