//! A share's worker thread: every blocking job on the share's files and index (scans,
//! applying peers' records, installing downloads) runs here, one at a time, so two jobs
//! never read-modify-write the same records concurrently. A dedicated thread per share
//! (rather than the shared blocking pool) keeps one share's long scan from delaying another's.

use std::sync::mpsc;

use tokio::sync::oneshot;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Handle to a share's worker thread; the thread ends when the last handle is dropped.
#[derive(Debug)]
pub struct Worker<S> {
    tx: mpsc::Sender<Job<S>>,
    exited: Exited,
}

impl<S> Clone for Worker<S> {
    fn clone(&self) -> Self {
        Worker { tx: self.tx.clone(), exited: self.exited.clone() }
    }
}

/// Resolves once a worker thread has ended (after its last job, once every handle is gone).
#[derive(Debug, Clone)]
pub struct Exited(tokio::sync::watch::Receiver<()>);

impl Exited {
    /// Waits for the thread to end.
    pub async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

/// The worker thread is gone (it panicked, or could not start).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the share's worker thread is gone")]
pub struct WorkerGone;

impl<S: Send + 'static> Worker<S> {
    /// Starts the thread that owns `state`.
    pub fn spawn(name: String, mut state: S) -> std::io::Result<Worker<S>> {
        let (tx, rx) = mpsc::channel::<Job<S>>();
        let (alive, exited) = tokio::sync::watch::channel(());
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(job) = rx.recv() {
                job(&mut state);
            }
            drop(state);
            drop(alive);
        })?;
        Ok(Worker { tx, exited: Exited(exited) })
    }

    /// What resolves once the thread has ended.
    pub fn exited(&self) -> Exited {
        self.exited.clone()
    }

    /// Runs `f` on the thread after the jobs queued before it; resolves with its result.
    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> impl std::future::Future<Output = Result<R, WorkerGone>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(Box::new(move |s: &mut S| {
            let _ = tx.send(f(s));
        }));
        async move {
            sent.map_err(|_| WorkerGone)?;
            rx.await.map_err(|_| WorkerGone)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn jobs_run_in_order_on_one_thread() {
        let w = Worker::spawn("test".into(), Vec::<u32>::new()).unwrap();
        let a = w.run(|v| {
            v.push(1);
            std::thread::current().name().map(str::to_owned)
        });
        let b = w.run(|v| {
            v.push(2);
            v.clone()
        });
        assert_eq!(a.await.unwrap().as_deref(), Some("test"));
        assert_eq!(b.await.unwrap(), vec![1, 2]);
        // A panicking job takes the thread down; later jobs report it instead of hanging.
        let _ = w.run(|_| panic!("boom")).await;
        assert!(w.run(|v| v.len()).await.is_err());
        w.exited().wait().await;
    }
}
