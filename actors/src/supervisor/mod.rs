//! The root actor of the worker: it starts the other actors, wires them together through
//! `Recipient`s and answers daemon-wide questions (status, pause, stop).

pub mod messages;

use std::time::Instant;

use actix::{Actor, Addr, AsyncContext, Context, Handler, System};
use tracing::info;

use self::messages::{GetStatus, SetPaused, Shutdown, Status};
use crate::control::{Control, ControlTargets};
use crate::Settings;

/// The worker's root actor.
#[derive(Debug)]
pub struct Supervisor {
    settings: Settings,
    started: Instant,
    paused: bool,
    control_listener: Option<std::os::unix::net::UnixListener>,
    control: Option<Addr<Control>>,
}

impl Supervisor {
    /// A supervisor that will serve the control socket on `control_listener` (already bound
    /// by the caller, so that a second daemon fails before any actor starts).
    pub fn new(settings: Settings, control_listener: std::os::unix::net::UnixListener) -> Self {
        Supervisor {
            settings,
            started: Instant::now(),
            paused: false,
            control_listener: Some(control_listener),
            control: None,
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let targets =
            ControlTargets { status: me.clone().recipient(), pause: me.clone().recipient(), shutdown: me.recipient() };
        if let Some(listener) = self.control_listener.take() {
            self.control = Some(Control::new(listener, self.settings.software.clone(), targets).start());
        }
        info!(data_dir = %self.settings.data_dir.display(), "worker started");
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = actix::MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(Status {
            paused: self.paused,
            tracking: false,
            nat_punctured: false,
            upload_rate: 0,
            download_rate: 0,
            software: self.settings.software.clone(),
            pid: std::process::id(),
            uptime_seconds: self.started.elapsed().as_secs(),
        })
    }
}

impl Handler<SetPaused> for Supervisor {
    type Result = ();

    fn handle(&mut self, SetPaused(paused): SetPaused, _: &mut Context<Self>) {
        if self.paused != paused {
            info!(paused, "sync {}", if paused { "paused" } else { "resumed" });
        }
        self.paused = paused;
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        info!("stopping on request");
        System::current().stop();
    }
}
