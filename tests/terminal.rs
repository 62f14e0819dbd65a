//! What a person at a terminal sees, through a real pseudo-terminal (`script` from
//! util-linux, in every Debian): a password is read without echo, and sharing asks for it
//! twice.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::util::{wait_for, Daemon};

/// `clearskies ARGS…` of `d` on a pseudo-terminal; what it shows, as it shows it.
struct OnTerminal {
    child: std::process::Child,
    input: std::process::ChildStdin,
    shown: Arc<Mutex<Vec<u8>>>,
}

impl OnTerminal {
    fn run(d: &Daemon, args: &[&str]) -> Option<OnTerminal> {
        if Command::new("script").arg("--version").output().is_err() {
            assert!(std::env::var("CI").is_err(), "`script` (util-linux) is missing under CI");
            eprintln!("skipped: no `script` to make a pseudo-terminal with");
            return None;
        }
        let inner = d.cs.command(args);
        let line: Vec<String> = std::iter::once(inner.get_program())
            .chain(inner.get_args())
            .map(|a| format!("'{}'", a.to_str().unwrap().replace('\'', "'\\''")))
            .collect();
        let mut c = Command::new("script");
        c.args(["-qec", &line.join(" "), "/dev/null"]).stdin(Stdio::piped()).stdout(Stdio::piped());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        let mut child = c.spawn().unwrap();
        let (input, mut output) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let shown = Arc::new(Mutex::new(Vec::new()));
        let into = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Some(OnTerminal { child, input, shown })
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned()
    }

    /// Types `line` once `prompt` is on the screen (typing earlier would be echoed by the
    /// terminal before the program could turn echo off, as for a person).
    fn answer(&mut self, prompt: &str, line: &str) {
        wait_for(&format!("the prompt {prompt:?}"), || self.shown().contains(prompt).then_some(()));
        self.input.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn finish(mut self) -> (bool, String) {
        let status = wait_for("the command to end", || self.child.try_wait().unwrap());
        // What was shown up to the end (the reader sees the end of the output then).
        let shown = wait_for("the output to end", || {
            let s = self.shown();
            (!s.is_empty()).then_some(s)
        });
        (status.success(), shown)
    }
}

#[test]
fn a_password_typed_at_a_terminal_is_not_echoed_and_sharing_asks_for_it_twice() {
    let d = Daemon::start();
    let base = tempfile::tempdir().unwrap();
    let (first, second) = (base.path().join("first"), base.path().join("second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();

    let Some(mut t) = OnTerminal::run(&d, &["share", first.to_str().unwrap(), "--username", "alice"]) else { return };
    t.answer("password for alice: ", "s3cret-figs-42");
    t.answer("the same password again: ", "s3cret-figs-42");
    let (ok, shown) = t.finish();
    assert!(ok, "{shown}");
    assert!(shown.contains("Username \"alice\""), "{shown}");
    assert!(!shown.contains("s3cret-figs-42"), "the password was echoed:\n{shown}");

    // Two different ones: nothing is shared.
    let Some(mut t) = OnTerminal::run(&d, &["share", second.to_str().unwrap(), "--username", "bob"]) else { return };
    t.answer("password for bob: ", "one-password");
    t.answer("the same password again: ", "another-one");
    let (ok, shown) = t.finish();
    assert!(!ok && shown.contains("do not match"), "{shown}");
    assert!(!shown.contains("one-password") && !shown.contains("another-one"), "{shown}");
    let list = d.cs.ok(&["list"]);
    assert!(!list.contains(second.to_str().unwrap()), "{list}");
}
