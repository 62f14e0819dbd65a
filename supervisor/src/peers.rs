//! `clearskies peers` and `peers remove`.

use clearskies_actors::control::cmd::{PeerRemoved, Peers, RemovePeer, Request};

use crate::client::answer_as;
use crate::config::Config;
use crate::daemon::connect;
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
        text.push_str(&format!(
            "{}  {}  {}  ({})  {}\n",
            p.address,
            state,
            p.source,
            p.peer.as_deref().unwrap_or("-"),
            p.path,
        ));
    }
    out(text.trim_end())
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
        paths.join(", ")
    ))
}
