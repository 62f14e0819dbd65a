//! Handing connected peers a share's new keys after a rotation (see `shares::rekey`).

use actix::{Context, Handler};

use super::messages::SendRekey;
use super::Connections;
use crate::peer::messages::PeerOut;

impl Handler<SendRekey> for Connections {
    type Result = usize;

    /// Each session of the share gets the signed rekey of its key's level, queued before
    /// anything that closes it.
    fn handle(&mut self, msg: SendRekey, _: &mut Context<Self>) -> usize {
        let mut sent = 0;
        for s in self.sessions.values().filter(|s| s.share == msg.share && !msg.skip.contains(&s.peer)) {
            if let Some((_, signed)) = msg.rekeys.iter().find(|(level, _)| *level == s.level) {
                s.out.do_send(PeerOut::SendSigned(vec![signed.clone()]));
                sent += 1;
            }
        }
        sent
    }
}
