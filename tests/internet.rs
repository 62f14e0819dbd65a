//! Friends behind home routers (issue 21), in a small internet of Linux network namespaces
//! that tests/internet/internet.py builds: a public side with a `clearskies tracker` and a
//! STUN server (coturn), home LANs behind NATting routers (cone or symmetric; UPnP IGD and
//! NAT-PMP from miniupnpd), an IPv6-only link. tests/internet/test_internet.py checks that
//! this internet behaves as described (NAT mappings and filtering, port mapping, STUN), then
//! has two daemons behind two routers sync through the tracker. See tests/internet/README.md.
//! Skipped, saying why, where it cannot run: not root, network namespaces not available, a
//! tool missing (`.ci/run` installs them); the script exits 77 then.

/// The script's exit status for "cannot run here".
const SKIP: i32 = 77;

#[test]
fn a_namespace_internet_with_nat_upnp_and_stun_and_daemons_syncing_across_it() {
    let out = match std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/internet/test_internet.py"))
        .env("CLEARSKIES_BIN", env!("CARGO_BIN_EXE_clearskies"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: cannot run python3: {e}");
            return;
        }
    };
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(SKIP) {
        eprintln!("{}", text.trim());
        return;
    }
    assert!(out.status.success(), "the namespace internet test failed:\n{text}");
    assert!(text.contains(" 0 failed"), "{text}");
}
