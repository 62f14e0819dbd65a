//! Link options of the `clearskies` executable, for a smaller resident worker (see
//! `layout/README.md`). Both only with LLD, the default linker of Rust 1.90 and later on
//! x86_64 Linux; elsewhere the executable links as before.
//!
//! - `layout/clearskies.order` lists the functions a running daemon uses. The linker puts
//!   them first and together, so the code a worker touches is a few adjacent megabytes.
//!   Otherwise it is spread over all 20 MB of code, and the kernel maps the 64 KiB around
//!   each page faulted in (fault-around): an idle worker had 17 MiB of its code resident,
//!   against 5.5 MiB ordered. Symbols the list names that this build lacks (another rustc or
//!   other dependencies rename Rust's) are skipped: the layout is then partly ordered.
//! - Relative relocations packed (`DT_RELR`, glibc 2.36 and later): the loader reads 40 KB
//!   of them at start instead of 950 KB of `.rela.dyn`, which stayed resident.
//! - `CLEARSKIES_LINK_MAP=FILE` writes the linker's map to FILE (for `layout/order.py`);
//!   `CLEARSKIES_LINK_ORDER=0` leaves the order file out.

// A build script speaks to Cargo on its standard output.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CLEARSKIES_LINK_MAP");
    println!("cargo:rerun-if-env-changed=CLEARSKIES_LINK_ORDER");
    println!("cargo:rerun-if-changed=layout/clearskies.order");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" || !links_with_lld() {
        return;
    }
    let arg = |a: &str| println!("cargo:rustc-link-arg-bin=clearskies={a}");
    if let Ok(map) = std::env::var("CLEARSKIES_LINK_MAP") {
        arg(&format!("-Wl,-Map={map}"));
        // The names as the order file needs them (this changes the map, not the executable).
        arg("-Wl,--no-demangle");
    }
    if std::env::var_os("CLEARSKIES_LINK_ORDER").is_none_or(|v| v != "0") {
        if let Some(order) = order_file() {
            arg(&format!("-Wl,--symbol-ordering-file={}", order.display()));
            arg("-Wl,--no-warn-symbol-ordering");
        }
    }
    if glibc_at_least(2, 36) {
        arg("-Wl,-z,pack-relative-relocs");
    }
}

/// A copy of `layout/clearskies.order` in `OUT_DIR`, for the linker. Not the file in the
/// source tree: Cargo keeps a build script's output while the tree moves (a clone elsewhere
/// sharing the target directory), and a path into the old tree would then break the link.
fn order_file() -> Option<PathBuf> {
    let source = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR")?).join("layout/clearskies.order");
    let copy = Path::new(&std::env::var_os("OUT_DIR")?).join("clearskies.order");
    std::fs::copy(source, &copy).ok()?;
    Some(copy)
}

/// Whether rustc links with LLD: Rust 1.90 and later do by default on x86_64 Linux, unless
/// the flags choose a linker.
fn links_with_lld() -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("fuse-ld") {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    version_of(Command::new(rustc).arg("--version")).is_some_and(|(major, minor)| (major, minor) >= (1, 90))
}

/// Whether this machine's glibc (which the executable will run with: it is built where it
/// is installed) reads packed relocations.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    // "glibc 2.36"
    version_of(Command::new("getconf").arg("GNU_LIBC_VERSION")).is_some_and(|v| v >= (major, minor))
}

/// The `major.minor` in the second word of what `cmd` prints.
fn version_of(cmd: &mut Command) -> Option<(u32, u32)> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = text.split_whitespace().nth(1)?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
