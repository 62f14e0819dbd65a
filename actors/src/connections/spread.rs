//! Code spreading's traffic (see `access::spread` for what spreads and what is accepted):
//! the codes a peer may hold when its session opens, a changed code to every connected peer
//! that may hold it, and what peers send, with the level their session was opened at.

use actix::{Context, Handler, Recipient};
use clearskies_protocol::message::code_spread::{Verifiers, MAX_SPREAD};
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::Sha256Hash;

use super::Connections;
use crate::access::messages::{CodesFromPeer, SpreadCode, SpreadableCodes};
use crate::access::spread::may_hold;
use crate::peer::messages::{PeerCodes, PeerOut};

impl Connections {
    /// Sends a new session of `share` (a peer at `level`) the codes it may hold.
    pub(super) fn send_codes(&self, share: Sha256Hash, level: AccessLevel, out: Recipient<PeerOut>) {
        let ask = self.targets.spreadable.send(SpreadableCodes { share, level });
        actix_rt::spawn(async move {
            if let Ok(codes) = ask.await.map(|c| Some(c).filter(|c| !c.is_empty())) {
                let Some(codes) = codes else { return };
                let messages = codes.chunks(MAX_SPREAD).map(|c| Verifiers { codes: c.to_vec() }.into()).collect();
                out.do_send(PeerOut::Send(messages));
            }
        });
    }
}

impl Handler<SpreadCode> for Connections {
    type Result = ();

    fn handle(&mut self, msg: SpreadCode, _: &mut Context<Self>) {
        let eligible = self
            .sessions
            .values()
            .filter(|s| s.share == msg.share && s.code_spread && may_hold(s.level, msg.code.level));
        for s in eligible {
            s.out.do_send(PeerOut::Send(vec![Verifiers { codes: vec![msg.code.clone()] }.into()]));
        }
    }
}

impl Handler<PeerCodes> for Connections {
    type Result = ();

    /// Hands what a peer spread to access, with the share and level of its session (never
    /// what the peer claims).
    fn handle(&mut self, msg: PeerCodes, _: &mut Context<Self>) {
        if let Some(s) = self.sessions.get(&msg.conn) {
            self.targets.codes_in.do_send(CodesFromPeer { share: s.share, level: s.level, codes: msg.codes });
        }
    }
}
