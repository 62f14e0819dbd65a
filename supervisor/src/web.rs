//! `clearskies open` (a one-time login link to the web interface, opened in the desktop's
//! browser when there is one) and `clearskies web-password` (set or remove the password
//! for longer sessions).

use clearskies_actors::control::cmd::{Checked, LoginLink, Request, SetWebPassword};

use crate::config::Config;
use crate::daemon::{self, connect};
use crate::out;

/// `clearskies open [--print]`.
pub(crate) fn open(config: &Config, print_only: bool) -> anyhow::Result<()> {
    let link: LoginLink = connect(config)?.request_as(&Request::WebLogin)?;
    let desktop = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !print_only && desktop {
        // The browser is left running; a failure to start one leaves the printed link.
        let started = std::process::Command::new("xdg-open")
            .arg(&link.url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if started.is_ok() {
            eprintln!("opening the web interface in your browser; the link works once, for 5 minutes:");
        }
    } else if !print_only {
        eprintln!("open this link in a browser on this computer (it works once, for 5 minutes):");
    }
    out(&link.url)
}

/// `clearskies web-password [--remove]`: the password is read from the terminal (twice),
/// or one line of standard input.
pub(crate) fn password(config: &Config, remove: bool) -> anyhow::Result<()> {
    let password = if remove {
        None
    } else {
        let (_, p) = daemon::with_password("the web interface".into(), None, daemon::Confirm::Twice)?;
        Some(p)
    };
    let request = Request::SetWebPassword(SetWebPassword { password: Some(Checked::Valid(password)) });
    connect(config)?.request(&request)?;
    out(if remove {
        "web interface password removed (log in with `clearskies open`)"
    } else {
        "web interface password set; sessions opened before are over"
    })
}
