//! Hashing a directory's changed files on several threads, while the scan takes the
//! results in listing order (and commits, and so announces, each file as soon as it and
//! those before it are hashed).
//!
//! SHA-256 of one file is sequential, but files are independent: with two cores, two
//! large files are hashed in the time of one. The threads live for one directory's
//! listing; a directory with at most one file to hash uses none.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use clearskies_protocol::Sha256Hash;
use sha2::{Digest, Sha256};

use crate::beneath::DirFd;

/// A file to hash: the directory it was listed in, and its name there.
pub(super) type Job = (DirFd, String);

/// What hashing a file gave: its SHA-256 and size, or why it could not be read.
pub(super) type Hashed = io::Result<(Sha256Hash, u64)>;

/// Most threads hashing at once, whatever the number of cores.
const MAX_HASHERS: usize = 4;

/// How many threads hash: one per core, at most [`MAX_HASHERS`].
pub(super) fn hashers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_HASHERS)
}

/// Hashes the files of `jobs` (`None`: nothing to hash at that index) on up to `threads`
/// threads and calls `take` on this thread for every index in order, with the result for
/// that index once it is there. The first error `take` returns stops the hashing (files
/// being hashed are finished, no new one starts) and is returned.
pub(super) fn in_order<E>(
    jobs: &[Option<Job>],
    threads: usize,
    mut take: impl FnMut(usize, Option<Hashed>) -> Result<(), E>,
) -> Result<(), E> {
    let work = jobs.iter().filter(|j| j.is_some()).count();
    if work <= 1 || threads <= 1 {
        return one_by_one(jobs, &mut take);
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Hashed)>();
        let mut started = 0;
        for _ in 0..threads.min(work) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            let hasher = move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    if let Some(job) = job {
                        if tx.send((i, hash_job(job))).is_err() {
                            break;
                        }
                    }
                }
            };
            // A thread the system will not make (a pids limit in a container) is one
            // fewer: those started share the work; with none, it is done right here.
            match std::thread::Builder::new().name("hasher".into()).spawn_scoped(scope, hasher) {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, "cannot start a hashing thread"),
            }
        }
        drop(tx);
        if started == 0 {
            return one_by_one(jobs, &mut take);
        }
        let taken = take_in_order(jobs, &rx, &mut take);
        stop.store(true, Ordering::Relaxed);
        taken
    })
}

/// Hashes the files of `jobs` on this thread, giving each result to `take` in turn.
fn one_by_one<E>(jobs: &[Option<Job>], take: &mut impl FnMut(usize, Option<Hashed>) -> Result<(), E>) -> Result<(), E> {
    jobs.iter().enumerate().try_for_each(|(i, job)| take(i, job.as_ref().map(hash_job)))
}

/// Takes the results from `rx` (in any order) and gives them to `take` in index order.
fn take_in_order<E>(
    jobs: &[Option<Job>],
    rx: &mpsc::Receiver<(usize, Hashed)>,
    take: &mut impl FnMut(usize, Option<Hashed>) -> Result<(), E>,
) -> Result<(), E> {
    let mut arrived: BTreeMap<usize, Hashed> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        if job.is_none() {
            take(i, None)?;
            continue;
        }
        let result = loop {
            if let Some(r) = arrived.remove(&i) {
                break r;
            }
            match rx.recv() {
                Ok((j, r)) => {
                    arrived.insert(j, r);
                }
                // Every thread ended without it (none can panic short of a bug): say so
                // for this file, which is then skipped this scan.
                Err(_) => break Err(io::Error::other("the hashing threads ended early")),
            }
        };
        take(i, Some(result))?;
    }
    Ok(())
}

fn hash_job((dir, name): &Job) -> Hashed {
    dir.open_file(name, false).and_then(hash_open)
}

/// Streams a file through SHA-256. Opened without following a symlink and without blocking
/// on a FIFO, and hashed only if the handle is a regular file: whatever a local user swaps
/// in at that path can neither redirect nor hang the worker.
pub fn hash_file(path: &Path) -> io::Result<(Sha256Hash, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    hash_open(f)
}

/// Streams an open regular file through SHA-256.
pub(crate) fn hash_open(mut f: File) -> io::Result<(Sha256Hash, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = crate::fsops::read_buffer(f.metadata()?.len());
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((Sha256Hash(hasher.finalize().into()), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beneath::Root;

    fn setup(files: &[(&str, &[u8])]) -> (tempfile::TempDir, DirFd) {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (name, data) in files {
            std::fs::write(tmp.path().join(name), data).expect("write");
        }
        let root = Root::open(tmp.path()).expect("root");
        let dir = root.dir("").expect("dir");
        (tmp, dir)
    }

    #[test]
    fn results_come_in_listing_order_whatever_finishes_first() {
        let big = vec![7u8; 3 << 20];
        let (_tmp, dir) = setup(&[("big", &big), ("a", b"a"), ("b", b"b")]);
        let jobs = vec![
            Some((dir.clone(), "big".to_owned())),
            None,
            Some((dir.clone(), "a".to_owned())),
            Some((dir.clone(), "missing".to_owned())),
            Some((dir.clone(), "b".to_owned())),
        ];
        for threads in [1, 2, 4] {
            let mut seen = Vec::new();
            in_order::<()>(&jobs, threads, |i, r| {
                seen.push((i, r.map(|r| r.map(|(_, n)| n).map_err(|e| e.kind()))));
                Ok(())
            })
            .expect("no error");
            assert_eq!(
                seen,
                vec![
                    (0, Some(Ok(3 << 20))),
                    (1, None),
                    (2, Some(Ok(1))),
                    (3, Some(Err(io::ErrorKind::NotFound))),
                    (4, Some(Ok(1))),
                ],
                "{threads} threads"
            );
        }
    }

    #[test]
    fn an_error_from_take_stops_and_is_returned() {
        let (_tmp, dir) = setup(&[("a", b"a"), ("b", b"b"), ("c", b"c")]);
        let jobs: Vec<Option<Job>> = ["a", "b", "c"].iter().map(|n| Some((dir.clone(), (*n).to_owned()))).collect();
        let mut taken = 0;
        let r = in_order(&jobs, 2, |i, _| {
            taken += 1;
            if i == 1 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!((r, taken), (Err("stop"), 2));
    }

    #[test]
    fn the_hash_is_the_files_sha256() {
        let (_tmp, dir) = setup(&[("x", b"hello"), ("y", b"")]);
        let jobs = vec![Some((dir.clone(), "x".to_owned())), Some((dir.clone(), "y".to_owned()))];
        let mut got = Vec::new();
        in_order::<()>(&jobs, 2, |_, r| {
            got.push(r.expect("a job").expect("hashed"));
            Ok(())
        })
        .expect("no error");
        use sha2::{Digest, Sha256};
        let want = |d: &[u8]| (Sha256Hash(Sha256::digest(d).into()), d.len() as u64);
        assert_eq!(got, vec![want(b"hello"), want(b"")]);
    }
}
