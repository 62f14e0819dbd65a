//! The `Discovery` actor: finds peers for the IDs we know (share key IDs, live access codes,
//! codes being attached with) through trackers and LAN broadcast, and reports them to
//! `connections`, which decides whom to dial. Manual peers (`--peer`, the `peers` setting)
//! and re-dialling stay with `connections`.

pub mod addresses;
pub mod lan;
pub mod tracker_client;
pub mod tracker_server;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient};
use clearskies_protocol::address::PeerAddr;
use clearskies_protocol::{PeerId, Sha256Hash};
use tokio::sync::{mpsc, watch};

/// Where to look.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// Trackers, `HOST:PORT`.
    pub trackers: Vec<String>,
    /// Where LAN broadcasts go (`None`: LAN discovery off).
    pub lan: Option<SocketAddr>,
    /// The address we listen on (if specific, announced instead of the one trackers see;
    /// its port is the one peers reach).
    pub listen: SocketAddr,
    /// Addresses port mapping and STUN learned (`reach`), announced too.
    pub learned: watch::Receiver<Vec<PeerAddr>>,
}

/// The IDs to announce and look for, each with our peer ID for it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetIds(pub BTreeMap<Sha256Hash, PeerId>);

/// Peers found for an ID.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Discovered {
    /// The access ID or key ID.
    pub id: Sha256Hash,
    /// Peer ID → addresses.
    pub peers: BTreeMap<PeerId, Vec<PeerAddr>>,
    /// `tracker` or `lan`.
    pub source: &'static str,
}

/// Peer discovery.
#[derive(Debug)]
pub struct Discovery {
    settings: DiscoverySettings,
    ids: watch::Sender<BTreeMap<Sha256Hash, PeerId>>,
    found: Recipient<Discovered>,
}

impl Discovery {
    /// Discovery with `settings`, reporting to `found`.
    pub fn new(settings: DiscoverySettings, found: Recipient<Discovered>) -> Self {
        Discovery { settings, ids: watch::Sender::new(BTreeMap::new()), found }
    }
}

impl Actor for Discovery {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (tx, mut rx) = mpsc::channel(256);
        for t in &self.settings.trackers {
            let announce = tracker_client::Announce {
                ids: self.ids.subscribe(),
                listen: self.settings.listen,
                learned: self.settings.learned.clone(),
            };
            actix_rt::spawn(tracker_client::run(t.clone(), announce, tx.clone()));
        }
        if let Some(target) = self.settings.lan {
            actix_rt::spawn(lan::run(target, self.ids.subscribe(), self.settings.listen.port(), tx.clone()));
        }
        drop(tx);
        let found = self.found.clone();
        let me = ctx.address();
        actix_rt::spawn(async move {
            while let Some((news, source)) = rx.recv().await {
                if !me.connected() {
                    return;
                }
                found.do_send(Discovered { id: news.id, peers: news.peers, source });
            }
        });
    }
}

impl Handler<SetIds> for Discovery {
    type Result = ();

    fn handle(&mut self, SetIds(ids): SetIds, _: &mut Context<Self>) {
        self.ids.send_if_modified(|current| {
            if *current == ids {
                return false;
            }
            *current = ids;
            true
        });
    }
}
