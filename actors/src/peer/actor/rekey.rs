//! `.rs.clearskies.rekey`: the share's new keys after a rotation, handed to the registry
//! with the bytes it was signed over (the registry checks the read-write signature: only a
//! holder of the read-write private key may move a share to new keys). And the check of a
//! read-write signature, which `database.update` and `untrusted.verify` use too.

use super::Peer;

/// Largest `.rs.clearskies.rekey` body taken (three levels' keys with their PEM keys take
/// about 6 KiB).
const MAX_REKEY: usize = 64 * 1024;
use crate::peer::messages::Rekeyed;

impl Peer {
    /// Hands a received rekey to the registry (a connection with no share or level yet
    /// cannot be rekeyed: ignored).
    pub(super) fn forward_rekey(
        &mut self,
        rekey: clearskies_protocol::message::core::Rekey,
        body: bytes::Bytes,
        signature: Option<bytes::Bytes>,
    ) {
        let (Some(share), Some(level)) = (self.share, self.level) else {
            return tracing::debug!(remote = %self.remote, "a rekey on a connection without a share; ignored");
        };
        // One per connection (the sender closes it after one), and small: checking its
        // signature is work a peer must not be able to ask for again and again.
        if self.rekeyed || body.len() > MAX_REKEY {
            return self.close_for("more than one rekey, or one too large".into());
        }
        self.rekeyed = true;
        let remote = self.remote.addr;
        self.targets.rekeyed.do_send(Rekeyed { share, level, body, signature, rekey, remote });
    }
}

/// A `database.update` on a connection with a read-only peer must carry the read-write
/// key's signature of its body: the body and signature to keep and relay, or why not.
pub(super) fn check_signature(
    key: &clearskies_index::rsa::VerifyingKey,
    body: &[u8],
    signature: Option<&[u8]>,
) -> Result<clearskies_index::record::Signed, &'static str> {
    let signature = signature.ok_or("it is not signed, and a read-only connection needs the read-write signature")?;
    if !key.verify(body, signature) {
        return Err("its signature is not the read-write key's");
    }
    let body = std::str::from_utf8(body).map_err(|_| "its body is not UTF-8")?;
    let signature = std::str::from_utf8(signature).map_err(|_| "its signature is not text")?;
    Ok(clearskies_index::record::Signed { body: body.to_owned(), signature: signature.to_owned() })
}
