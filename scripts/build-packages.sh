#!/usr/bin/env bash
# Builds the podwrangler .deb and .rpm (one package holding podwranglerd and pwctl) into
# target/packages/ (or $PODWRANGLER_PACKAGES_DIR), installing cargo-deb and cargo-generate-rpm
# first if they are missing. Needs dpkg-deb and objcopy (binutils). Respects CARGO_TARGET_DIR.
# Prints the paths of the two packages on its last two lines.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
out=${PODWRANGLER_PACKAGES_DIR:-$root/target/packages}
assets=$target/release/pkg-assets
# File dates in both packages: the last commit's, so rebuilding the same tree gives the same files.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# The packagers, at the versions this metadata was written for; installed once when missing
# (about 5 minutes on 2 cores).
for tool in cargo-deb@3.8.0 cargo-generate-rpm@0.21.1; do
  command -v "${tool%@*}" >/dev/null && continue
  echo "build-packages.sh: installing $tool" >&2
  cargo install --locked --quiet "$tool" || { echo "build-packages.sh: cannot install $tool" >&2; exit 1; }
done

echo "build-packages.sh: cargo build --release (podwranglerd, pwctl)" >&2
cargo build --release --locked -p pwctl -p podwranglerd

# The binaries as packaged: the release profile already strips symbols; drop the compiler's
# .comment section too (lintian: binary-has-unneeded-section).
rm -rf "$assets"
mkdir -p "$assets/man1"
for bin in podwranglerd pwctl; do
  objcopy --remove-section=.comment "$target/release/$bin" "$assets/$bin"
done

# Completions and man pages come from the binaries just built, so they match their flags.
pwctl=$assets/pwctl
"$pwctl" completions bash >"$assets/pwctl.bash"
"$pwctl" completions zsh >"$assets/_pwctl"
"$pwctl" completions fish >"$assets/pwctl.fish"
for f in pwctl.bash _pwctl pwctl.fish; do
  [ -s "$assets/$f" ] || { echo "build-packages.sh: pwctl completions produced an empty $f" >&2; exit 1; }
done
"$pwctl" man >"$assets/man1/pwctl.1"
[ -s "$assets/man1/pwctl.1" ] || { echo "build-packages.sh: pwctl man produced nothing" >&2; exit 1; }
cp packaging/podwranglerd.8 "$assets/podwranglerd.8"
# -n: no name or timestamp in the gzip header, so rebuilding gives the same bytes.
gzip -9nf "$assets/podwranglerd.8" "$assets"/man1/*.1

mkdir -p "$out"
rm -f "$out"/podwrangler_*.deb "$out"/podwrangler-*.rpm
echo "build-packages.sh: cargo deb" >&2
cargo deb -p podwranglerd --no-build --locked --output "$out/" >&2
deb=$(ls "$out"/podwrangler_*.deb)
# cargo-deb writes no md5sums control file; add it (dpkg --verify and debsums need it) by
# unpacking and rebuilding the package with dpkg-deb, owners root:root as before.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --raw-extract "$deb" "$tmp/pkg"
(cd "$tmp/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$tmp/pkg/DEBIAN/md5sums"
chmod 0644 "$tmp/pkg/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$tmp/pkg" "$deb" >/dev/null

echo "build-packages.sh: cargo generate-rpm" >&2
cargo generate-rpm -p daemon --payload-compress zstd -o "$out/" >&2

rpm=$(ls "$out"/podwrangler-*.rpm)
echo "$deb"
echo "$rpm"
