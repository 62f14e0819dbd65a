//! `clearskies versions`, `restore` and `revert`: a share's kept versions.

use anyhow::Context;
use std::collections::HashMap;

use clearskies_actors::control::cmd::{
    HistoryAnswer, ListVersions, Peers, Request, RestoreVersion, Revert, Version, Why,
};
use clearskies_protocol::time::Timestamp;

use crate::config::Config;
use clearskies_actors::config::parse::show_bytes as bytes;

use crate::daemon::{connect, dir_arg};
use crate::log::escape_line;
use crate::out;

/// `YYYYMMDD-HHMMSS` (UTC) of a version: what `restore --version` takes.
fn stamp(v: &Version) -> String {
    Timestamp::new(v.time, 0).map(clearskies_index::versions::stamp).unwrap_or_else(|| v.time.to_string())
}

/// Why `v` was kept, naming the peer by the name it gives itself when we know it (`names`:
/// peer ID → name, from `list_peers`).
fn why(v: &Version, names: &HashMap<String, String>) -> String {
    // (`by` is checked to be a peer ID when the log is read; taken by characters anyway.)
    let by =
        v.by.as_deref()
            .map(|p| {
                let short: String = p.chars().take(8).collect();
                match names.get(p) {
                    Some(name) => format!(" by {} ({short})", escape_line(name)),
                    None => format!(" by peer {short}"),
                }
            })
            .unwrap_or_default();
    match v.why {
        Why::Replaced => format!("replaced{by}"),
        Why::Deleted => format!("deleted{by}"),
        Why::Restored => "replaced by a restore".to_owned(),
        Why::Reverted => "a local change reverted".to_owned(),
        _ => "kept".to_owned(),
    }
}

/// `clearskies versions PATH [FILE]`.
pub(crate) fn versions(config: &Config, path: &std::path::Path, file: Option<&str>, json: bool) -> anyhow::Result<()> {
    let p = dir_arg(path)?;
    let shown = escape_line(&p);
    let request = ListVersions { path: Some(p.clone()), file: file.map(str::to_owned) };
    let mut c = connect(config)?;
    if json {
        let answer = c.request(&Request::ListVersions(request))?;
        return out(&serde_json::to_string_pretty(&answer).context("encoding the answer")?);
    }
    let HistoryAnswer::Listed { versions } = c.request_as(&Request::ListVersions(request))? else {
        anyhow::bail!("the daemon answered something else than a list of versions");
    };
    if versions.is_empty() {
        let what = file.map_or_else(|| "any file".to_owned(), escape_line);
        return out(&format!("no versions of {what} are kept in {shown}"));
    }
    // The peers' names, where this daemon has seen them (best effort).
    let names: HashMap<String, String> = c
        .request_as::<Peers>(&Request::ListPeers)
        .map(|Peers { peers }| peers.into_iter().filter_map(|p| Some((p.peer?, p.name?))).collect())
        .unwrap_or_default();
    let mut text = format!("versions kept in {shown} (oldest first; times UTC, as `restore --version` takes them):");
    for v in &versions {
        let line = format!("\n  {}  {:>9}  {}  ({})", stamp(v), bytes(v.size), escape_line(&v.path), why(v, &names));
        text.push_str(&line);
    }
    out(&text)
}

/// `clearskies restore PATH FILE [--version T]`.
pub(crate) fn restore(
    config: &Config,
    path: &std::path::Path,
    file: &str,
    version: Option<&str>,
) -> anyhow::Result<()> {
    let p = dir_arg(path)?;
    let shown = escape_line(&p);
    let request =
        RestoreVersion { path: Some(p.clone()), file: Some(file.to_owned()), version: version.map(Into::into) };
    let HistoryAnswer::Restored { restored, version } =
        connect(config)?.request_as(&Request::RestoreVersion(request))?
    else {
        anyhow::bail!("the daemon answered something else than a restored version");
    };
    out(&format!(
        "restored {} in {shown} to its version of {} UTC (what was there is kept as a version); it is a change here like any edit (on a read-only share it stays here)",
        escape_line(&restored),
        stamp(&version)
    ))
}

/// `clearskies revert PATH`.
pub(crate) fn revert(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    let p = dir_arg(path)?;
    let shown = escape_line(&p);
    let HistoryAnswer::Reverted { moved, restoring } =
        connect(config)?.request_as(&Request::Revert(Revert { path: Some(p.clone()) }))?
    else {
        anyhow::bail!("the daemon answered something else than a revert");
    };
    if moved.is_empty() && restoring.is_empty() {
        return out(&format!("{shown} has no local changes"));
    }
    out(&format!(
        "{} local changes in {shown} moved into the versions (`clearskies versions {shown}` lists them); {} files and directories come back from the read-write peers",
        moved.len(),
        restoring.len()
    ))
}
