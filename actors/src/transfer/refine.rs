//! Refined deltas (`.rs.clearskies.rsync-refine`, see `rdiff::refine`), the receiving side:
//! a plan answering our coarse signature is answered with the plan and a fine signature of
//! the parts of our basis around its gaps; the delta that comes back is taken as any other.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use clearskies_index::fsops::SharedReader;
use clearskies_protocol::message::{rsync, Message};
use clearskies_protocol::rdiff::refine::{coarse_params, fine_request, Plan, MAX_PIECES};
use clearskies_protocol::Sha256Hash;
use tracing::{debug, warn};

use super::messages::{Finished, Sink, SinkItem};
use super::{Failure, Transfer, CUT_OFF, SINK_DEPTH};
use crate::peer::messages::{PeerOut, Producer};

/// Largest plan we take (its [`MAX_PIECES`] pieces of at most 17 bytes, and the magic).
const MAX_PLAN: usize = 4 + MAX_PIECES * 17;

/// Why a plan could not be answered.
pub(super) enum PlanFailure {
    /// The connection ended, or our basis could not be read: ask again.
    Retry(String),
    /// The plan is malformed: the connection is closed, and the file fetched whole.
    Malformed(String),
}

impl Transfer {
    /// Takes the plan `conn` answered our coarse signature of `sha`'s basis with, and sends
    /// it back with the fine signature (`rsync.signature`, step `fine`).
    pub(super) fn receive_plan(
        &mut self,
        conn: u64,
        sha: Sha256Hash,
        path: String,
        basis: Arc<File>,
        ctx: &mut Context<Self>,
    ) -> Option<Sink> {
        let size = self.wanted.get(&sha)?.size;
        debug!(conn, sha256 = %sha, "receiving a delta plan");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SinkItem>(SINK_DEPTH);
        let job = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, PlanFailure> {
            let mut bytes = Vec::new();
            loop {
                match rx.blocking_recv() {
                    Some(SinkItem::Chunk(b)) if bytes.len() + b.len() > MAX_PLAN => {
                        return Err(PlanFailure::Malformed(format!("delta plan over {MAX_PLAN} bytes")));
                    }
                    Some(SinkItem::Chunk(b)) => bytes.extend_from_slice(&b),
                    Some(SinkItem::End) => break,
                    None => return Err(PlanFailure::Retry(CUT_OFF.into())),
                }
            }
            let mut reader = SharedReader::new(basis);
            let retry = |e: std::io::Error| PlanFailure::Retry(format!("reading the basis: {e}"));
            let basis_len = reader.seek(SeekFrom::End(0)).map_err(retry)?;
            let plan = Plan::parse(&bytes, size, basis_len)
                .map_err(|e| PlanFailure::Malformed(format!("bad delta plan: {e}")))?;
            let slack = u64::from(coarse_params(basis_len).block_len);
            fine_request(&mut reader, basis_len, &plan, slack)
                .map_err(|e| PlanFailure::Retry(format!("signing the basis: {e}")))
        });
        ctx.spawn(job.into_actor(self).map(move |joined, act, ctx| {
            match joined.unwrap_or_else(|e| Err(PlanFailure::Retry(e.to_string()))) {
                Ok(request) => {
                    let Some(slot) = act.peers.get(&conn).filter(|s| s.requests.asked.contains(&sha)) else { return };
                    debug!(conn, sha256 = %sha, bytes = request.len(), "asking for a refined delta");
                    let step = Some(rsync::RefineStep::Fine);
                    let header = Message::from(rsync::Signature { path, sha256: Some(sha), refine: step });
                    let produce = Producer(Box::new(move |w: &mut dyn std::io::Write| w.write_all(&request)));
                    slot.out.do_send(PeerOut::Produce { header, produce, compressible: false });
                }
                Err(failure) => act.plan_failed(conn, sha, failure, ctx),
            }
        }));
        Some(tx)
    }

    /// The plan `conn` sent for `sha` could not be answered: asked again later, or (if it
    /// was malformed, or not asked for) the connection is closed and the file fetched whole.
    pub(super) fn plan_failed(&mut self, conn: u64, sha: Sha256Hash, failure: PlanFailure, ctx: &mut Context<Self>) {
        let failure = match failure {
            PlanFailure::Retry(text) => Failure::retry(text),
            PlanFailure::Malformed(text) => {
                warn!(conn, sha256 = %sha, reason = %text, "closing the connection");
                if let Some(slot) = self.peers.get(&conn) {
                    slot.out.do_send(PeerOut::Close(text.clone()));
                }
                Failure::bad_delta(text)
            }
        };
        if self.answered(conn, &sha) {
            if let Some(slot) = self.peers.get_mut(&conn) {
                slot.requests.gets = slot.requests.gets.saturating_sub(1);
            }
            ctx.notify(Finished { conn, sha256: sha, delta: true, result: Err(failure) });
        }
    }
}

/// `file` (`len` bytes) as readers of consecutive parts, one per core (at most 4), each but
/// the last a whole number of `block`s: for the coarse step's signature and plan, whose
/// parts are summed or planned on threads of their own.
pub(super) fn parts(file: Arc<File>, len: u64, block: u32) -> Vec<std::io::Take<SharedReader>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let block = u64::from(block.max(1));
    let per = len.div_ceil(block).div_ceil(cores as u64).max(1) * block;
    let mut parts = Vec::with_capacity(cores);
    let mut start = 0;
    loop {
        let mut part = SharedReader::new(file.clone());
        // (A position, never past what `Take` lets be read.)
        let _ = part.seek(SeekFrom::Start(start));
        let this = per.min(len - start);
        parts.push(std::io::Read::take(part, this));
        start += this;
        if start >= len {
            return parts;
        }
    }
}
