//! The monitor's own log lines, in the format of the worker's (tracing-subscriber's, without
//! colours): `2026-01-02T03:04:05.678901Z  INFO clearskies::monitor: message key=value`,
//! escaped as the worker's are ([`escape_line`]) and written to stderr in one write each.
//! The monitor does not link tracing-subscriber (its filter brings a regex engine): this is
//! the little of it the monitor uses.
//!
//! `CLEARSKIES_LOG` filters these lines as it filters the worker's, for the directives that
//! can name the monitor: a bare level (`warn`) and `TARGET=LEVEL` where `clearskies::monitor`
//! starts with `TARGET` (the longest such target wins). Directives with span or field
//! filters (`[...]`) never match here. A value that does not parse means `info`, as for the
//! worker.

use std::fmt::Display;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::shared::escape_line;

/// The target every line names, as the monitor's lines always have.
const TARGET: &str = "clearskies::monitor";

/// How much is shown: 0 nothing, 1 errors, 2 warnings, 3 information (the default) and
/// above (the monitor writes nothing below information).
static SHOWN: OnceLock<u8> = OnceLock::new();

/// A line's level.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
}

pub(crate) fn info(message: &str, fields: &[(&str, &dyn Display)]) {
    say(Level::Info, message, fields);
}

pub(crate) fn warn(message: &str, fields: &[(&str, &dyn Display)]) {
    say(Level::Warn, message, fields);
}

pub(crate) fn error(message: &str, fields: &[(&str, &dyn Display)]) {
    say(Level::Error, message, fields);
}

/// Writes one line to stderr, if `CLEARSKIES_LOG` lets it through. A failed write is
/// ignored (as tracing-subscriber does): nobody could be told.
fn say(level: Level, message: &str, fields: &[(&str, &dyn Display)]) {
    let shown = *SHOWN.get_or_init(|| threshold(std::env::var("CLEARSKIES_LOG").ok().as_deref().unwrap_or("")));
    if level as u8 > shown {
        return;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let line = format_line(now, level, message, fields);
    let _ = std::io::stderr().write_all(escape_line(&line).as_bytes());
}

fn format_line(now: Duration, level: Level, message: &str, fields: &[(&str, &dyn Display)]) -> String {
    let level = match level {
        Level::Error => "ERROR",
        Level::Warn => " WARN",
        Level::Info => " INFO",
    };
    let mut line = format!("{} {level} {TARGET}: {message}", timestamp(now));
    for (name, value) in fields {
        line.push_str(&format!(" {name}={value}"));
    }
    line.push('\n');
    line
}

/// What `CLEARSKIES_LOG` (`filter`) lets through of the monitor's lines; see the module.
fn threshold(filter: &str) -> u8 {
    const DEFAULT: u8 = Level::Info as u8;
    let mut best: Option<(usize, u8)> = None;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match directive.rsplit_once('=') {
            Some((target, level)) => (target, level),
            None if level_number(directive).is_some() => ("", directive),
            // A bare target means every level of it.
            None => (directive, "trace"),
        };
        let Some(level) = level_number(level) else { return DEFAULT };
        if target.contains('[') || !TARGET.starts_with(target) {
            continue;
        }
        if best.is_none_or(|(len, _)| target.len() >= len) {
            best = Some((target.len(), level));
        }
    }
    best.map_or(DEFAULT, |(_, level)| level)
}

fn level_number(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "off" => 0,
        "error" => 1,
        "warn" => 2,
        "info" => 3,
        "debug" => 4,
        "trace" => 5,
        _ => return None,
    })
}

/// `since` the epoch as RFC 3339 in UTC, to the microsecond: `2026-01-02T03:04:05.678901Z`.
fn timestamp(since: Duration) -> String {
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let time = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        time / 3600,
        time / 60 % 60,
        time % 60,
        since.subsec_micros()
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_the_workers() {
        let at = Duration::from_micros(1_767_323_045_678_901);
        let pid: &dyn Display = &42;
        assert_eq!(
            format_line(at, Level::Info, "worker started", &[("pid", pid)]),
            "2026-01-02T03:04:05.678901Z  INFO clearskies::monitor: worker started pid=42\n"
        );
        assert!(format_line(at, Level::Error, "x", &[]).contains("Z ERROR clearskies::monitor: x\n"));
        assert_eq!(timestamp(Duration::ZERO), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day in a century year) and 2100-03-01.
        assert_eq!(timestamp(Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000000Z");
        assert_eq!(timestamp(Duration::from_secs(4_107_542_400)), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn clearskies_log_filters_as_for_the_worker() {
        assert_eq!(threshold(""), 3);
        assert_eq!(threshold("warn"), 2);
        assert_eq!(threshold("debug,clearskies=error"), 1);
        assert_eq!(threshold("clearskies::monitor=warn,clearskies=trace"), 2);
        assert_eq!(threshold("clearskies_actors=trace"), 3, "another target");
        assert_eq!(threshold("clearskies=off"), 0);
        assert_eq!(threshold("clearskies"), 5);
        assert_eq!(threshold("error,clearskies[span]=trace"), 1);
        assert_eq!(threshold("warn,clearskies=loud"), 3, "what does not parse means info");
    }
}
