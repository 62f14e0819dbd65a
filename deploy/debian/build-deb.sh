#!/bin/sh
# Builds a Debian package of ClearSkies from a built binary with dpkg-deb alone (no
# debhelper, no cargo-deb):
#
#   cargo build --release --locked && deploy/debian/build-deb.sh
#   sudo apt install ./target/debian/clearskies_0.1.0-1_amd64.deb
#
# Usage: build-deb.sh [BINARY [OUT_DIR]]  (default target/release/clearskies, target/debian)
# The daemon's monitor, clearskies-monitor, is taken from beside BINARY. Prints the package's
# path. The binary writes its own completions and man pages, so it must
# run here. Environment: DEB_COMPRESSION (dpkg-deb -Z: xz by default, gzip, zstd, none),
# DEB_MAINTAINER (the control file's Maintainer).
#
# The package: /usr/bin/clearskies, clearskies-monitor and clearskies-system, the system unit
# /lib/systemd/system/clearskies.service and the user unit
# /usr/lib/systemd/user/clearskies.service (both ExecStart=/usr/bin/clearskies), bash, zsh
# and fish completions, man pages, /usr/share/doc/clearskies/{README.md,copyright}; the
# maintainer scripts in this directory (postinst: the clearskies user and /var/lib/clearskies).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${1:-$repo/target/release/clearskies}
out=${2:-$repo/target/debian}
compression=${DEB_COMPRESSION:-xz}
maintainer=${DEB_MAINTAINER:-ClearSkies maintainers <clearskies@example.invalid>}

fail() { echo "build-deb.sh: $*" >&2; exit 1; }
[ -x "$bin" ] || fail "no executable $bin (build it first: cargo build --release --locked)"
monitor="$(dirname "$bin")/clearskies-monitor"
[ -x "$monitor" ] || fail "no executable $monitor beside $bin (build it: cargo build --release --locked)"
version=$("$bin" --version | sed -n 's/^clearskies \([0-9][0-9A-Za-z.+~-]*\)$/\1/p')
[ -n "$version" ] || fail "$bin --version did not say which version it is"
arch=$(dpkg --print-architecture)
deb_version="$version-1"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"

# The binaries, stripped as Debian ships binaries (a release build already is).
install -d -m 0755 "$root/usr/bin"
install -m 0755 "$bin" "$root/usr/bin/clearskies"
install -m 0755 "$monitor" "$root/usr/bin/clearskies-monitor"
if command -v strip >/dev/null 2>&1; then
  strip --strip-unneeded "$root/usr/bin/clearskies" "$root/usr/bin/clearskies-monitor"
fi
install -m 0755 "$here/../clearskies-system" "$root/usr/bin/clearskies-system"

# The units, with the packaged binary's path (the files in deploy/ name where a manual
# install puts it). Checked: a unit that still names another path is an error.
install -d -m 0755 "$root/lib/systemd/system" "$root/usr/lib/systemd/user"
sed 's#^ExecStart=/usr/local/bin/clearskies #ExecStart=/usr/bin/clearskies #' \
  "$here/../clearskies.service" >"$root/lib/systemd/system/clearskies.service"
sed 's#^ExecStart=%h/.cargo/bin/clearskies #ExecStart=/usr/bin/clearskies #' \
  "$here/../clearskies-user.service" >"$root/usr/lib/systemd/user/clearskies.service"
for unit in "$root/lib/systemd/system/clearskies.service" "$root/usr/lib/systemd/user/clearskies.service"; do
  grep -qx 'ExecStart=/usr/bin/clearskies start --foreground' "$unit" || fail "$unit: ExecStart not rewritten"
  chmod 0644 "$unit"
done

# Completions and man pages, from the binary itself.
install -d -m 0755 "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/man/man1" "$root/usr/share/doc/clearskies"
"$bin" completions bash >"$root/usr/share/bash-completion/completions/clearskies"
"$bin" completions zsh >"$root/usr/share/zsh/vendor-completions/_clearskies"
"$bin" completions fish >"$root/usr/share/fish/vendor_completions.d/clearskies.fish"
"$bin" manpage --dir "$root/usr/share/man/man1" >/dev/null
gzip -9n "$root"/usr/share/man/man1/*.1
install -m 0644 "$repo/README.md" "$here/copyright" "$root/usr/share/doc/clearskies/"
find "$root/usr/share" -type f -exec chmod 0644 {} +

# What the binaries link against: dpkg-shlibdeps gives packages and minimum versions; without
# it (no dpkg-dev) each library a binary needs is mapped to its package, unversioned, and
# an unknown one stops the build rather than be left out.
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
  mkdir -p "$work/src/debian"
  printf 'Source: clearskies\n\nPackage: clearskies\nArchitecture: any\n' >"$work/src/debian/control"
  libs=$(cd "$work/src" && dpkg-shlibdeps -O "$root/usr/bin/clearskies" "$root/usr/bin/clearskies-monitor" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
else
  libs=""
  for lib in $(objdump -p "$root/usr/bin/clearskies" "$root/usr/bin/clearskies-monitor" | awk '$1 == "NEEDED" { print $2 }'); do
    case "$lib" in
      libc.so.* | libm.so.* | ld-linux*.so.* | libpthread.so.* | libdl.so.* | librt.so.*) pkg=libc6 ;;
      libstdc++.so.*) pkg=libstdc++6 ;;
      libgcc_s.so.*) pkg=libgcc-s1 ;;
      *) fail "the binary needs $lib: add its package to Depends in $0" ;;
    esac
    case ", $libs, " in *", $pkg, "*) ;; *) libs="${libs:+$libs, }$pkg" ;; esac
  done
fi
[ -n "$libs" ] || fail "could not work out the binary's library dependencies"

install -d -m 0755 "$root/DEBIAN"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: clearskies
Version: $deb_version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $libs, adduser
Section: net
Priority: optional
Homepage: https://example.invalid/clearskies
Description: friend-to-friend file sync daemon
 ClearSkies keeps folders in sync between computers that trust each other,
 directly, with no cloud account, on the open ClearSkies protocol: read-write
 and read-only shares, access codes, encrypted backup to untrusted peers.
 .
 This package has the daemon and its command (clearskies), a system service
 (clearskies.service, as the clearskies user, data in /var/lib/clearskies; not
 started until you enable it), a user service (systemctl --user), shell
 completions and man pages.
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/clearskies_${deb_version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$deb" >/dev/null
echo "$deb"
