//! Friends behind home routers (issue 21), in a small internet of Linux network namespaces
//! that tests/internet/internet.py builds: a public side with a `clearskies tracker` and a
//! STUN server (coturn), home LANs behind NATting routers (cone or symmetric; UPnP IGD and
//! NAT-PMP from miniupnpd), an IPv6-only link. tests/internet/test_internet.py checks that
//! this internet behaves as described (NAT mappings and filtering, port mapping, STUN), then
//! has two daemons behind two routers sync through the tracker; test_reach.py tests what the
//! daemon does to be reached (port mapping, STUN, `status`). See tests/internet/README.md.
//! Skipped, saying why, where it cannot run: not root, network namespaces not available, a
//! tool missing (`.ci/run` installs them); the script exits 77 then.

/// The script's exit status for "cannot run here".
const SKIP: i32 = 77;

/// Runs tests/internet/SCRIPT with the freshly built binary: passes, fails with its output,
/// or is skipped (printing why) where the internet cannot be built.
fn run(script: &str) {
    let path = format!("{}/tests/internet/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = match std::process::Command::new("python3")
        .arg(&path)
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
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert!(text.contains(" 0 failed"), "{text}");
}

#[test]
fn a_namespace_internet_with_nat_upnp_and_stun_and_daemons_syncing_across_it() {
    run("test_internet.py");
}

/// Port mapping through a real NAT-PMP router, the mapping given back at stop, and `status`
/// saying whether and how peers reach this computer (test_reach.py).
#[test]
fn daemons_behind_home_routers_map_their_port_and_say_whether_they_are_reachable() {
    run("test_reach.py");
}
