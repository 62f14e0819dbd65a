//! The container files in `deploy/` without a Docker engine: the entrypoint run directly
//! (as root it really changes user and ownership, with ids that exist on this machine), the
//! compose file parsed as YAML (python3's `yaml`) and checked, Grafana's password script and
//! the `.dockerignore`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::packaging::have;
use crate::service::repo_file;
use crate::util::{stderr, stdout};

/// `sh deploy/entrypoint.sh CMD…` with `env` and CLEARSKIES_HOME=`home`.
fn entrypoint(home: &Path, env: &[(&str, &str)], cmd: &[&str]) -> Output {
    Command::new("sh")
        .arg(repo_file("deploy/entrypoint.sh"))
        .args(cmd)
        .env("CLEARSKIES_HOME", home)
        .env_remove("TZ")
        .env_remove("UMASK")
        .env_remove("PUID")
        .env_remove("PGID")
        .envs(env.iter().copied())
        // (Somewhere PUID can be, after the entrypoint changed user.)
        .current_dir("/")
        .output()
        .unwrap()
}

fn is_root() -> bool {
    stdout(&Command::new("id").arg("-u").output().unwrap()).trim() == "0"
}

#[test]
fn the_entrypoint_applies_umask_and_tz_and_refuses_bad_values_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("data");
    // As root the command runs as PUID:PGID: nobody's ids, which exist everywhere (so the
    // entrypoint creates no user on this machine).
    let ids = [("PUID", "65534"), ("PGID", "65534")];
    let show = ["sh", "-c", "umask; echo \"TZ=$TZ\""];
    let zone = if Path::new("/usr/share/zoneinfo/Europe/Paris").exists() { "Europe/Paris" } else { "UTC" };
    let o = entrypoint(&home, &[ids[0], ids[1], ("UMASK", "0027"), ("TZ", zone)], &show);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("0027\nTZ={zone}\n"));
    // The default mask is 022.
    let o = entrypoint(&home, &ids, &["sh", "-c", "umask"]);
    assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "0022"), "{}", stderr(&o));
    for (env, says) in [
        (("UMASK", "0o22"), "UMASK must be an octal mask"),
        (("UMASK", "999"), "UMASK must be an octal mask"),
        (("UMASK", "22"), "UMASK must be an octal mask"),
        (("TZ", "Mars/Olympus_Mons"), "is not a time zone"),
        (("TZ", "../../etc/passwd"), "TZ must name a time zone"),
    ] {
        let o = entrypoint(&home, &[ids[0], ids[1], env], &["true"]);
        assert_eq!(o.status.code(), Some(64), "{env:?}");
        assert!(stderr(&o).contains(says) && stderr(&o).lines().count() == 1, "{env:?}: {}", stderr(&o));
    }
    if !is_root() {
        eprintln!("skipping the entrypoint's user and ownership part: that needs root");
        return;
    }
    for (env, says) in [(("PUID", "0"), "refusing to run the daemon as root"), (("PGID", "x"), "must be numbers")] {
        let o = entrypoint(&home, &[ids[0], ids[1], env], &["true"]);
        assert_eq!(o.status.code(), Some(64), "{env:?}");
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
    }
}

#[test]
fn the_entrypoint_gives_the_data_directory_to_a_changed_puid_once_and_drops_root() {
    if !is_root() {
        eprintln!("skipping the entrypoint's ownership test: it needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("data");
    // A data directory written by another PUID (here root), with files in it.
    std::fs::create_dir_all(home.join("db")).unwrap();
    std::fs::write(home.join("db/CURRENT"), "x").unwrap();
    std::fs::write(home.join("config.toml"), "").unwrap();
    let ids = [("PUID", "65534"), ("PGID", "65534")];
    let o = entrypoint(&home, &ids, &["sh", "-c", "id -u; id -g"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "65534\n65534\n", "the command runs as PUID:PGID");
    assert!(stderr(&o).contains("belongs to 0:0, not to PUID:PGID 65534:65534"), "{}", stderr(&o));
    for path in ["", "db", "db/CURRENT", "config.toml"] {
        let m = std::fs::metadata(home.join(path)).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{path}");
    }
    assert_eq!(std::fs::metadata(&home).unwrap().mode() & 0o777, 0o700);
    // The next start finds it right and walks nothing.
    let o = entrypoint(&home, &ids, &["true"]);
    assert!(o.status.success() && stderr(&o).is_empty(), "{}", stderr(&o));
}

/// The compose file as JSON (through python3's yaml), or `None` (and why) without them.
fn compose() -> Option<serde_json::Value> {
    let load = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    if !have("python3", &["-c", "import yaml"], "parsing docker-compose.yml (python3 with its yaml module)") {
        return None;
    }
    let o = Command::new("python3").args(["-c", load]).arg(repo_file("deploy/docker-compose.yml")).output().unwrap();
    assert!(o.status.success(), "docker-compose.yml is not valid YAML: {}", stderr(&o));
    Some(serde_json::from_str(&stdout(&o)).unwrap())
}

/// The monitor's grace period for a stopping worker, read from its source.
fn monitor_stop_grace() -> u64 {
    let source = std::fs::read_to_string(repo_file("supervisor/src/monitor/supervise.rs")).unwrap();
    let line = source.lines().find(|l| l.starts_with("const STOP_GRACE: Duration")).expect("STOP_GRACE");
    let secs = line.split("from_secs(").nth(1).and_then(|r| r.split(')').next()).expect("from_secs(N)");
    secs.parse().unwrap()
}

#[test]
fn compose_stops_gracefully_keeps_monitoring_optional_and_grafana_off_admin_admin() {
    let Some(c) = compose() else { return };
    let services = c["services"].as_object().unwrap();
    let cs = &services["clearskies"];
    assert!(cs.get("profiles").is_none(), "clearskies always runs");
    let grace = cs["stop_grace_period"].as_str().expect("stop_grace_period");
    let grace: u64 = grace.strip_suffix('s').and_then(|s| s.parse().ok()).expect("seconds");
    assert!(grace >= monitor_stop_grace() + 10, "stop_grace_period {grace}s, the monitor's {}s", monitor_stop_grace());
    for key in ["PUID", "PGID", "UMASK", "TZ"] {
        assert!(cs["environment"][key].is_string(), "{key} is passed to the container");
    }
    assert!(cs["ports"].as_array().unwrap().iter().any(|p| p == "49221:49221"));
    for name in ["prometheus", "grafana"] {
        assert_eq!(services[name]["profiles"], serde_json::json!(["monitoring"]), "{name}");
    }
    let grafana = &services["grafana"];
    assert_eq!(grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"], "${GF_SECURITY_ADMIN_PASSWORD:-}");
    assert_eq!(grafana["entrypoint"], serde_json::json!(["/bin/sh", "/etc/grafana/clearskies-admin-password.sh"]));
    // Every file the stack mounts from the repository exists.
    for service in services.values() {
        for volume in service["volumes"].as_array().unwrap().iter().filter_map(|v| v.as_str()) {
            let source = volume.split(':').next().unwrap();
            if source.starts_with('.') && source != "./shares" {
                assert!(repo_file("deploy").join(source).exists(), "{volume}");
            }
        }
    }
}

#[test]
fn grafanas_password_is_the_given_one_or_generated_once_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("password");
    let run = |given: Option<&str>| {
        let mut c = Command::new("sh");
        c.arg(repo_file("deploy/grafana/admin-password.sh"))
            .env("GRAFANA_PASSWORD_FILE", &file)
            .env("GRAFANA_RUN", "/usr/bin/env")
            .env_remove("GF_SECURITY_ADMIN_PASSWORD");
        if let Some(p) = given {
            c.env("GF_SECURITY_ADMIN_PASSWORD", p);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let env = stdout(&o);
        env.lines().find_map(|l| l.strip_prefix("GF_SECURITY_ADMIN_PASSWORD=")).unwrap().to_owned()
    };
    assert_eq!(run(Some("chosen by me")), "chosen by me");
    assert!(!file.exists(), "a given password is not stored");
    let generated = run(None);
    assert!(generated.len() >= 24 && generated != "admin" && generated.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    assert_eq!(run(None), generated, "kept across restarts");
}

#[test]
fn the_docker_build_leaves_out_build_output_and_history_but_not_what_it_copies() {
    let ignore = std::fs::read_to_string(repo_file(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for needed in ["target/", ".git/", "deploy/shares/"] {
        assert!(patterns.contains(&needed), "{needed} is not ignored");
    }
    // What the Dockerfile copies stays in the context.
    let dockerfile = std::fs::read_to_string(repo_file("deploy/Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY . .") && dockerfile.contains("COPY deploy/entrypoint.sh"));
    for kept in ["deploy/", "Cargo.toml", "Cargo.lock", "supervisor/", "actors/", "index/", "protocol/"] {
        assert!(!patterns.iter().any(|p| p.trim_end_matches('/') == kept.trim_end_matches('/')), "{kept}");
    }
    assert!(dockerfile.contains("tzdata"), "TZ needs the tz database in the image");
    // Both executables: `clearskies start --foreground` runs the monitor found beside it.
    for bin in ["clearskies", "clearskies-monitor"] {
        assert!(dockerfile.contains(&format!("--bin {bin} ")), "the image builds {bin}");
        let copied = format!("COPY --from=build /usr/local/bin/{bin} /usr/local/bin/{bin}\n");
        assert!(dockerfile.contains(&copied), "the image holds {bin}");
    }
}
