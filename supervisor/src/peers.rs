//! `clearskies peers`, `peers remove` and `keys rotate`.

use clearskies_actors::config::parse::show_bytes as bytes;
use clearskies_actors::control::cmd::{AtPath, KeysRotated, PeerRemoved, PeerState, Peers, RemovePeer, Request};

use crate::client::answer_as;
use crate::config::Config;
use crate::daemon::connect;
use crate::log::escape_line;
use crate::out;

/// `clearskies peers`.
pub(crate) fn peers(config: &Config, json: bool) -> anyhow::Result<()> {
    let answer = connect(config)?.request(&Request::ListPeers)?;
    if json {
        return out(&answer.to_string());
    }
    let Peers { peers } = answer_as(&answer)?;
    if peers.is_empty() {
        return out("no peers");
    }
    let mut text = String::new();
    for p in peers {
        let state = match p.failures {
            Some(n) if n > 0 => format!("{} ({n} failed attempts)", p.state),
            _ => p.state.to_string(),
        };
        let mut about = String::new();
        if let Some(level) = p.access_level {
            about.push_str(&format!("  {}", level.as_str().replace('_', "-")));
        }
        if let Some(t) = &p.transport {
            about.push_str(&format!("  {t}"));
        }
        if let (Some(seen), false) = (p.last_seen, p.state == PeerState::Connected) {
            about.push_str(&format!("  last seen {} ago", ago(seen)));
        }
        if let (Some(sent), Some(received)) = (p.sent_bytes, p.received_bytes) {
            about.push_str(&format!("  {} sent, {} received", bytes(sent), bytes(received)));
        }
        text.push_str(&format!(
            "{}  {}  {}  {} ({}){about}  {}\n",
            p.address,
            state,
            p.source,
            escape_line(p.name.as_deref().unwrap_or("-")),
            p.peer.as_deref().unwrap_or("-"),
            escape_line(&p.path),
        ));
    }
    out(text.trim_end())
}

/// How long ago Unix time `t` was, readably.
fn ago(t: i64) -> String {
    crate::daemon::human_duration(crate::daemon::unix_now().saturating_sub(t).max(0))
}

/// `clearskies peers remove PEER [--path P]`.
pub(crate) fn remove_peer(config: &Config, peer: &str, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let path = path.map(crate::daemon::dir_arg).transpose()?;
    let request = RemovePeer { peer: Some(peer.to_owned()), path };
    let PeerRemoved { peer, paths, disconnected } = connect(config)?.request_as(&Request::RemovePeer(request))?;
    out(&format!(
        "removed peer {peer} from {}: {disconnected} connection(s) closed, and it is refused from now on.\n\
         It keeps the files it has and the share's key of its level: with a new peer ID it could connect again. \
         Invite the others again with new codes and share a fresh copy if that key must stop working.",
        escape_line(&paths.join(", "))
    ))
}

/// `clearskies keys rotate PATH`.
pub(crate) fn rotate_keys(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    let p = crate::daemon::dir_arg(path)?;
    let KeysRotated { path, peers } = connect(config)?.request_as(&Request::RotateKeys(AtPath::new(&p)))?;
    out(&format!(
        "{} has new keys; {peers} connected peer(s) were given theirs and reconnect with them.\n\
         The old keys no longer open the share: a peer that was not connected (or was removed) must be \
         invited again with a new code, and codes issued before were cancelled.",
        escape_line(&path)
    ))
}
