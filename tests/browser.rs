//! The web interface in a real browser: Debian's headless Chromium driven over WebDriver
//! by tests/browser/test_web.py (two real daemons, each with its own interface: log in,
//! share, attach through the other's page, watch it reach "in sync", thumbnails, video
//! with a seek, codes, CSRF refusals, settings, versions, logout). See
//! tests/browser/README.md. Skipped, saying why, where Chromium is not installed (`.ci/run`
//! installs it).

#[test]
fn the_web_interface_works_in_a_real_browser() {
    let missing: Vec<&str> = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!("skipped: {missing:?} missing (apt-get install chromium chromium-driver)");
        return;
    }
    let shots = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/test_web.py"))
        .env("CLEARSKIES_BIN", env!("CARGO_BIN_EXE_clearskies"))
        .env("SCREENSHOTS_DIR", shots.path())
        .output()
        .expect("running python3");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{text}");
    assert!(text.contains(" 0 failed"), "{text}");
}
