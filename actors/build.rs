//! Builds the web interface's files (`src/web/assets/`) into the binary: writes
//! `$OUT_DIR/assets.rs`, a table of every file's name and bytes (`include_bytes!`).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read at run time: `env!` would bake in the directory the script was first compiled in,
    // and cargo keeps a workspace member's build script across checkouts at other paths (a
    // CI clone sharing the target directory), which then read another tree's assets, or none.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("src/web/assets");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).filter(|e| e.path().is_file()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    let mut out = String::from(
        "/// The interface's files: name and contents.\npub(super) const BUILT_IN: &[(&str, &[u8])] = &[\n",
    );
    for path in names {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", path.display().to_string());
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("assets.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
