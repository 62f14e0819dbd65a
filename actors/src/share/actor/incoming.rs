//! Peers' changes on their way into the share: their records batched into one applier job
//! (a burst of updates costs one synced write), finished downloads installed in one job,
//! failed disk work retried, and what the outcomes call for: relaying, fetching, events.

use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, SpawnHandle, WrapFuture};
use tracing::{debug, error};

use super::events::ShareEvent;
use super::{new_uuid, Share, ShareState, State, RETRY_FAILED};
use crate::metrics::metrics;
use crate::peer::messages::PeerOut;
use crate::share::messages::FsChanged;
use crate::share::worker::WorkerGone;
use crate::transfer::messages::Fetches;
use clearskies_index::{apply, record, scan};

/// How long after failed disk work (e.g. a non-empty directory where a file goes) all
/// pending work is tried again.
const RETRY_PENDING: Duration = Duration::from_secs(30);
/// Peers' records waiting to be applied before senders are made to wait.
const MAX_INCOMING: usize = 20_000;

/// Work waiting for the worker, and whether a job of each kind runs.
#[derive(Debug)]
pub(super) struct Queues {
    /// Peers' records to apply (with the connection each came from).
    incoming: Vec<(u64, record::Record)>,
    applying: bool,
    /// Finished downloads to install.
    downloads: Vec<apply::Download>,
    installing: bool,
    /// Counts applied batches (wakes senders held back by a full queue).
    applied: tokio::sync::watch::Sender<u64>,
    /// A retry of failed disk work is scheduled.
    retry: Option<SpawnHandle>,
}

impl Queues {
    pub(super) fn new() -> Self {
        Queues {
            incoming: Vec::new(),
            applying: false,
            downloads: Vec::new(),
            installing: false,
            applied: tokio::sync::watch::Sender::new(0),
            retry: None,
        }
    }

    /// Records or downloads wait, or a job on them runs.
    pub(super) fn busy(&self) -> bool {
        self.applying || self.installing || !self.incoming.is_empty() || !self.downloads.is_empty()
    }
}

impl Share {
    /// Runs `job` with an [`apply::Applier`] on the worker thread; resolves with its result
    /// and the number of records whose disk work failed.
    fn run_applier<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut apply::Applier<'_>) -> R + Send + 'static,
    ) -> impl std::future::Future<Output = Result<(R, usize), WorkerGone>> {
        self.worker.run(move |s: &mut ShareState| {
            let mut uuid = new_uuid;
            let mut a = s.applier(&mut uuid);
            let r = job(&mut a);
            let (failures, kept) = (a.failures, a.kept_bytes);
            if kept > 0 {
                s.prune_versions(kept, false);
            }
            (r, failures)
        })
    }

    /// A peer's record (from `conn`): queued to be applied. Resolves once it is taken in:
    /// when the queue is full, only after the next batch is applied. The connection waits
    /// for that before reading on, so a flood of updates is held in the peer's socket, not
    /// here.
    pub(super) fn take_update(
        &mut self,
        conn: u64,
        r: record::Record,
        ctx: &mut Context<Self>,
    ) -> actix::ResponseFuture<()> {
        self.queues.incoming.push((conn, r));
        self.apply_incoming(ctx);
        if self.queues.incoming.len() >= MAX_INCOMING {
            let mut applied = self.queues.applied.subscribe();
            return Box::pin(async move {
                let _ = applied.changed().await;
            });
        }
        Box::pin(async {})
    }

    /// A finished download: installed with the others that arrive meanwhile.
    pub(super) fn take_download(&mut self, download: apply::Download, ctx: &mut Context<Self>) {
        self.queues.downloads.push(download);
        self.install_downloads(ctx);
    }

    fn apply_incoming(&mut self, ctx: &mut Context<Self>) {
        if self.queues.applying || self.queues.incoming.is_empty() {
            return;
        }
        self.queues.applying = true;
        let batch = std::mem::take(&mut self.queues.incoming);
        let job = self.run_applier(move |a| a.receive(batch));
        ctx.spawn(job.into_actor(self).map(|joined, act, ctx| {
            act.queues.applying = false;
            act.queues.applied.send_modify(|n| *n += 1);
            let joined = joined.map(|(r, failures)| {
                act.retry_later(failures, ctx);
                r
            });
            match joined {
                Ok(Ok(outcome)) => act.applied(outcome),
                Ok(Err(e)) => {
                    // Nothing of the batch was recorded (one write batch), so our `since` did
                    // not move: ask the peers again, which the protocol makes idempotent.
                    error!(root = %act.root.display(), error = %e, retry_in = ?RETRY_FAILED,
                        "cannot store peers' changes; asking the peers for them again");
                    ctx.run_later(RETRY_FAILED, |act, _| act.ask_for_updates());
                }
                Err(e) => act.set_state(State::Error(e.to_string())),
            }
            act.apply_incoming(ctx);
        }));
    }

    /// Installs finished downloads, all that arrived meanwhile in one job (one index write
    /// and one fsync per directory for the batch).
    fn install_downloads(&mut self, ctx: &mut Context<Self>) {
        if self.queues.installing || self.queues.downloads.is_empty() {
            return;
        }
        self.queues.installing = true;
        let batch = std::mem::take(&mut self.queues.downloads);
        let job = self.run_applier(move |a| a.downloaded(batch));
        ctx.spawn(job.into_actor(self).map(|joined, act, ctx| {
            act.queues.installing = false;
            let joined = joined.map(|(r, failures)| {
                act.retry_later(failures, ctx);
                r
            });
            match joined {
                Ok(Ok(paths)) => {
                    debug!(root = %act.root.display(), installed = paths.len(), "downloads installed");
                    act.announce_installed(&paths);
                    if !paths.is_empty() {
                        act.events.emit(ShareEvent::Installed { paths });
                    }
                }
                // Files may have been renamed into place without their records: the
                // watcher skipped those renames' events (`OwnRenames`), so a scan looks.
                Ok(Err(e)) => {
                    error!(error = %e, "cannot record installed downloads; scanning the share");
                    ctx.notify(FsChanged { scope: scan::Scope::Full, finishes: true });
                }
                Err(e) => {
                    error!(error = %e, "cannot install downloads; scanning the share");
                    ctx.notify(FsChanged { scope: scan::Scope::Full, finishes: true });
                }
            }
            act.install_downloads(ctx);
        }));
    }

    /// Some disk work failed (left pending): try all pending work again in a while.
    fn retry_later(&mut self, failures: usize, ctx: &mut Context<Self>) {
        if failures == 0 || self.queues.retry.is_some() {
            return;
        }
        self.queues.retry = Some(ctx.run_later(RETRY_PENDING, |act, ctx| {
            let job = act.run_applier(|a| a.resume());
            ctx.spawn(job.into_actor(act).map(|joined, act, ctx| {
                act.queues.retry = None;
                if let Ok((r, failures)) = joined {
                    if let Ok(fetch) = r {
                        act.fetch(fetch);
                    }
                    act.retry_later(failures, ctx);
                }
            }));
        }));
    }

    fn applied(&mut self, outcome: apply::Outcome) {
        let apply::Outcome { announce, fetch, ignored, conflicts } = outcome;
        metrics().conflicts.inc_by(u64::try_from(conflicts).unwrap_or(u64::MAX));
        debug!(root = %self.root.display(), adopted = announce.len(), ignored, conflicts, fetch = fetch.len(),
            "applied peers' changes");
        if conflicts > 0 {
            self.events.conflicts(announce.iter().map(|(from, r)| (*from, r)), self.me);
        }
        self.announce(announce);
        self.fetch(fetch);
    }

    /// Sends `database.get_updates` (everything newer than what we hold) to every peer.
    fn ask_for_updates(&self) {
        let since = self.store.since().unwrap_or_default();
        for sub in self.senders.values() {
            let get = clearskies_protocol::message::database::GetUpdates { since: since.clone() };
            sub.out().do_send(PeerOut::Send(vec![get.into()]));
        }
    }

    /// Hands contents to fetch to the transfer actor.
    pub(super) fn fetch(&self, fetch: Vec<apply::Fetch>) {
        if !fetch.is_empty() {
            self.transfer.do_send(Fetches(fetch));
        }
    }
}
