//! The web interface's daemon-wide commands: `web_login` (a one-time login link, made with
//! the worker's secret, which only the supervisor and the web server hold) and
//! `set_web_password` (the Argon2 hash in the data directory, which the web server reads at
//! each password login).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use actix::{Context, Handler, ResponseFuture};

use super::Supervisor;
use crate::control::cmd::{CommandError, ErrorCode};
use crate::control::messages::{SetWebPassword, WebLogin};
use crate::web::{auth, PASSWORD_FILE};

impl Handler<WebLogin> for Supervisor {
    type Result = Result<String, CommandError>;

    fn handle(&mut self, _: WebLogin, _: &mut Context<Self>) -> Self::Result {
        let addr = match self.metrics_addr {
            Some(a) if a.ip().is_loopback() => a,
            _ => {
                let why = "the web interface is served only on a loopback metrics_address (see `clearskies config get metrics_address`)";
                return Err(CommandError::new(ErrorCode::NoHttp, why));
            }
        };
        let token = auth::login_token(self.files_token.as_bytes(), crate::web::unix_now())
            .filter(|_| !self.files_token.is_empty())
            .ok_or_else(|| CommandError::new(ErrorCode::NoHttp, "no random numbers for a login link"))?;
        Ok(format!("http://{addr}/login?token={token}"))
    }
}

impl Handler<SetWebPassword> for Supervisor {
    type Result = ResponseFuture<Result<(), CommandError>>;

    fn handle(&mut self, msg: SetWebPassword, _: &mut Context<Self>) -> Self::Result {
        let file = self.settings.data_dir.join(PASSWORD_FILE);
        Box::pin(async move {
            let Some(password) = msg.0 else {
                return match std::fs::remove_file(&file) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(CommandError::new(ErrorCode::IoError, e.to_string())),
                };
            };
            // Argon2 takes tens of milliseconds and 19 MiB: off the event loop.
            let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
                .await
                .map_err(|_| CommandError::unavailable())?
                .map_err(|why| CommandError::new(ErrorCode::BadPassword, why))?;
            write_private(&file, hash.as_bytes()).map_err(|e| CommandError::new(ErrorCode::IoError, e.to_string()))
        })
    }
}

/// Writes `bytes` to `path` through a mode 0600 temporary file, fsynced and renamed.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
