//! What a peer's records can do to the receiving disk: never more than the receiving user
//! would give a new file of its own.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::util::{wait_for, Daemon};

/// The test process's umask (the daemons inherit it), read without changing it.
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let v = status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap();
    u32::from_str_radix(v.trim(), 8).unwrap()
}

fn mode(p: &std::path::Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// An honest peer whose files and directories carry setuid, setgid, sticky and
/// world-writable bits: the receiver keeps none of the first three and none of the bits its
/// umask removes (a setuid binary arriving owned by the daemon's user would be a shell as
/// that user, as root a root shell, for any local user).
#[test]
fn setuid_setgid_sticky_and_bits_the_umask_removes_never_arrive() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    fs::create_dir_all(ra.join("tools")).unwrap();
    fs::create_dir_all(ra.join("drop")).unwrap();
    fs::create_dir_all(&rb).unwrap();
    let files = [("tools/suid", 0o4777), ("sgid", 0o2777), ("drop/plain", 0o666)];
    for (name, m) in files {
        fs::write(ra.join(name), format!("#!/bin/sh\n# {name}\nid\n")).unwrap();
        fs::set_permissions(ra.join(name), fs::Permissions::from_mode(m)).unwrap();
    }
    let dirs = [("drop", 0o1777), ("tools", 0o2777)];
    for (name, m) in dirs {
        fs::set_permissions(ra.join(name), fs::Permissions::from_mode(m)).unwrap();
    }
    assert_eq!(mode(&ra.join("tools/suid")), 0o4777, "the test needs a setuid file on the sender");
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    let rb = fs::canonicalize(rb).unwrap();
    wait_for("b to receive every file", || files.iter().all(|(n, _)| rb.join(n).is_file()).then_some(()));
    assert!(b.cs.ok(&["wait", rb.to_str().unwrap(), "--timeout", "120"]).contains("in sync"));

    let u = umask();
    for (name, sent) in files.iter().chain(dirs.iter()) {
        let got = mode(&rb.join(name));
        assert_eq!(got & 0o7000, 0, "{name}: sent {sent:o}, got {got:o}: setuid, setgid or sticky kept");
        assert_eq!(got & u, 0, "{name}: sent {sent:o}, got {got:o}: bits the umask {u:o} removes");
        assert_eq!(got & 0o777, sent & 0o777 & !u, "{name}: sent {sent:o}, got {got:o}");
    }
    // The receiver does not send the stripped modes back as its own change.
    assert!(a.cs.ok(&["wait", ra.to_str().unwrap(), "--timeout", "120"]).contains("in sync"));
    assert_eq!(mode(&ra.join("tools/suid")), 0o4777);
    assert_eq!(mode(&ra.join("drop")), 0o1777);
}
