//! The code commands and `export_keys`.

use actix::{ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};
use clearskies_protocol::access_code::AccessCode;
use clearskies_protocol::message::core::{AccessLevel, Keys};
use tracing::info;

use super::messages::{CancelCode, CodeCreated, CodeEntry, CreateAccessCode, ExportKeys, ListCodes};
use super::Access;
use crate::control::cmd::{CommandError, ErrorCode};
use crate::share::registry::{self, CodeRecord, ShareConfig};
use crate::shares::table::ShareTable;

/// The level a `mode` names.
fn level_of(mode: &str) -> Result<AccessLevel, CommandError> {
    match mode {
        "read_write" | "read-write" => Ok(AccessLevel::ReadWrite),
        "read_only" | "read-only" => Ok(AccessLevel::ReadOnly),
        "untrusted" => Ok(AccessLevel::Untrusted),
        other => Err(CommandError::new(ErrorCode::BadMode, format!("unknown mode {other:?}"))),
    }
}

/// Whether a daemon holding the share at `ours` may give codes of `level`.
fn may_grant(ours: AccessLevel, level: AccessLevel) -> Result<(), CommandError> {
    match (ours, level) {
        (AccessLevel::ReadWrite, _) | (AccessLevel::ReadOnly, AccessLevel::ReadOnly) => Ok(()),
        (AccessLevel::ReadOnly, _) => Err(CommandError::new(
            ErrorCode::BadMode,
            "this computer holds the share read-only: it can only give read-only codes",
        )),
        _ => Err(CommandError::new(
            ErrorCode::BadMode,
            "this computer holds only encrypted data of the share: it cannot give codes",
        )),
    }
}

/// A code as `list_access_codes` shows it.
fn code_entry(table: &ShareTable, code: CodeRecord, now: i64) -> CodeEntry {
    let path = table.get(&code.share).map(|r| r.config.path.display().to_string()).unwrap_or_default();
    CodeEntry {
        access_id: code.access_id.to_string(),
        state: code.state(now).into(),
        mode: code.access_level.into(),
        username: code.username,
        path,
        created: code.created,
        expires: code.expires,
        multi_use: code.multi_use,
        used_by: code.used_by.iter().map(ToString::to_string).collect(),
    }
}

/// The share at `path`.
fn shared(table: &ShareTable, path: &std::path::Path) -> Result<ShareConfig, CommandError> {
    table
        .by_path(path)
        .map(|r| r.config.clone())
        .ok_or_else(|| CommandError::new(ErrorCode::NotShared, format!("{} is not shared", path.display())))
}

impl Handler<CreateAccessCode> for Access {
    type Result = ResponseActFuture<Self, Result<CodeCreated, CommandError>>;

    fn handle(&mut self, msg: CreateAccessCode, _: &mut Context<Self>) -> Self::Result {
        let share = shared(&self.table.borrow(), &msg.path);
        let store = self.store.clone();
        let now = crate::share::actor::now();
        let job = async move {
            let share = share?;
            let level = level_of(&msg.mode)?;
            may_grant(share.access_level, level)?;
            if matches!(msg.lifetime, registry::Lifetime::Secs(s) if s <= 0) {
                return Err(CommandError::new(ErrorCode::BadExpiry, "a code must stay valid for at least one second"));
            }
            let secret = match msg.custom {
                None => registry::CodeSecret::Generated,
                Some((username, password)) => {
                    let credentials = clearskies_protocol::access_code::Credentials::custom(&username, &password)
                        .map_err(|e| CommandError::new(ErrorCode::BadCredentials, e.to_string()))?;
                    registry::CodeSecret::Custom { username, credentials }
                }
            };
            let (lifetime, multi_use) = (msg.lifetime, msg.multi_use);
            tokio::task::spawn_blocking(move || {
                registry::create_code(&store, &share, level, lifetime, multi_use, secret, now)
            })
            .await
            .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(CommandError::from)
        };
        Box::pin(job.into_actor(self).map(|res, act, _| {
            let issued = res?;
            // In before the answer: the code works as soon as the user has it. (A custom
            // username's access ID is derived from it: a new code of that name replaces the
            // old one here as in the index.)
            act.codes.insert(issued.record.access_id, issued.record.clone());
            act.announce();
            act.spread(&issued.record);
            Ok(CodeCreated {
                access_code: issued.code.as_ref().map(ToString::to_string),
                url: issued.code.as_ref().map(AccessCode::to_url),
                username: issued.record.username,
                access_id: issued.record.access_id.to_string(),
                expires: issued.record.expires,
                multi_use: issued.record.multi_use,
            })
        }))
    }
}

impl Handler<ListCodes> for Access {
    type Result = ResponseActFuture<Self, Result<Vec<CodeEntry>, CommandError>>;

    fn handle(&mut self, _: ListCodes, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || registry::load_codes(&store));
        Box::pin(job.into_actor(self).map(|res, act, _| {
            let mut codes = res.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            // (Cancelled spread codes are kept for their peers, not shown.)
            codes.retain(|c| !c.revoked);
            codes.sort_by_key(|c| c.created);
            let now = crate::share::actor::now().secs();
            let table = act.table.borrow();
            Ok(codes.into_iter().map(|c| code_entry(&table, c, now)).collect())
        }))
    }
}

impl Handler<CancelCode> for Access {
    type Result = ResponseActFuture<Self, Result<CodeEntry, CommandError>>;

    fn handle(&mut self, CancelCode(which): CancelCode, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let now = crate::share::actor::now().secs();
        let job = tokio::task::spawn_blocking(move || registry::cancel_code(&store, &which, now));
        Box::pin(job.into_actor(self).map(|res, act, _| {
            let code = res.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            info!(code = %code.access_id, "cancelled an access code");
            if code.revoked {
                // Kept, cancelled, for its peers to learn (code spreading).
                act.codes.insert(code.access_id, code.clone());
                act.spread(&code);
            } else {
                act.codes.remove(&code.access_id);
            }
            act.announce();
            Ok(code_entry(&act.table.borrow(), code, crate::share::actor::now().secs()))
        }))
    }
}

impl Handler<ExportKeys> for Access {
    type Result = Result<Keys, CommandError>;

    fn handle(&mut self, msg: ExportKeys, _: &mut Context<Self>) -> Self::Result {
        let table = self.table.borrow();
        let share = table
            .by_path(&msg.path)
            .ok_or_else(|| CommandError::new(ErrorCode::NotShared, format!("{} is not shared", msg.path.display())))?;
        let material = share
            .keys
            .as_ref()
            .ok_or_else(|| CommandError::new(ErrorCode::NoKeys, "the share's keys are not loaded"))?;
        material
            .keys
            .grant(share.config.access_level)
            .ok_or_else(|| CommandError::new(ErrorCode::NoKeys, "the share's keys are incomplete"))
    }
}
