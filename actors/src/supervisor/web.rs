//! The web interface's daemon-wide commands: `web_login` (a one-time login link, made with
//! the worker's secret, which only the supervisor and the web server hold) and
//! `set_web_password` (the Argon2 hash in the data directory, which the web server reads at
//! each password login).

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
        // Argon2 (tens of milliseconds, 19 MiB) and the fsyncs: off the event loop.
        let set = move || match msg.0 {
            None => match std::fs::remove_file(&file) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(CommandError::new(ErrorCode::IoError, e.to_string())),
            },
            Some(password) => {
                let hash =
                    auth::hash_password(&password).map_err(|why| CommandError::new(ErrorCode::BadPassword, why))?;
                crate::share::registry::write_secret_file(&file, hash.as_bytes())
                    .map_err(|e| CommandError::new(ErrorCode::IoError, e.to_string()))
            }
        };
        Box::pin(async move { tokio::task::spawn_blocking(set).await.map_err(|_| CommandError::unavailable())? })
    }
}
