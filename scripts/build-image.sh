#!/usr/bin/env bash
# Builds the PodWrangler OCI image with buildah from an empty base (FROM scratch; nothing is
# pulled from a registry): podwranglerd and pwctl, exactly the shared libraries `ldd` names for
# them plus the dynamic loader, the build host's CA certificates, and /etc/passwd and /etc/group
# with the user podwrangler (uid and gid 10001). See deploy/image/Containerfile.
#
# Reuses the release binaries in $CARGO_TARGET_DIR/release (what scripts/build-packages.sh
# built); `cargo build --release` runs first and does nothing when they are up to date.
# Needs buildah (apt-get install buildah), objcopy, ldd; run as root (buildah's storage).
#
# Environment:
#   PODWRANGLER_IMAGE   image name (default localhost/podwrangler); tagged VERSION and latest
#   SOURCE_DATE_EPOCH   timestamps in the image (default: the last commit's)
# Prints the image's name:VERSION on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
image=${PODWRANGLER_IMAGE:-localhost/podwrangler}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

for tool in buildah objcopy ldd; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (apt-get install buildah binutils)" >&2; exit 2; }
done

echo "build-image.sh: cargo build --release (podwranglerd, pwctl)" >&2
cargo build --release --locked -p pwctl -p podwranglerd

# The root file system is assembled in $rootfs; the build context $ctx gets only its archive.
ctx=$target/image-context
rootfs=$target/image-rootfs
rm -rf "$ctx" "$rootfs"
mkdir -p "$ctx" "$rootfs/usr/bin"
# The release profile strips symbols; drop the compiler's .comment section too, as the packages do.
for bin in podwranglerd pwctl; do
  objcopy --remove-section=.comment "$target/release/$bin" "$rootfs/usr/bin/$bin"
  chmod 0755 "$rootfs/usr/bin/$bin"
done
version=$("$rootfs/usr/bin/podwranglerd" --version 2>&1 | awk '{print $2}')
[ -n "$version" ] || { echo "build-image.sh: cannot tell podwranglerd's version" >&2; exit 1; }

# Mirrors a directory of the host into the root fs: a symbolic link stays a link (relative,
# so it never points out of the root fs while the image is assembled), a directory is made.
mirror_dir() {
  local d=$1
  [ "$d" = / ] && return 0
  [ -e "$rootfs$d" ] || [ -L "$rootfs$d" ] && return 0
  mirror_dir "$(dirname "$d")"
  if [ -L "$d" ]; then
    ln -s "$(realpath --relative-to="$(dirname "$d")" "$d")" "$rootfs$d"
    mirror_dir "$(realpath "$d")"
  else
    mkdir -p "$rootfs$d"
  fi
}

# Copies a file of the host into the root fs at the same path, following its chain of links
# one at a time so that every name the loader may use exists (/lib64/ld-linux-x86-64.so.2 ->
# /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 on Debian, for instance).
copy_file() {
  local f=$1 t
  [ -e "$rootfs$f" ] || [ -L "$rootfs$f" ] && return 0
  mirror_dir "$(dirname "$f")"
  if [ -L "$f" ]; then
    t=$(readlink "$f")
    ln -s "$t" "$rootfs$f"
    case $t in /*) ;; *) t=$(dirname "$f")/$t ;; esac
    copy_file "$(realpath -s "$t")"
  else
    cp "$f" "$rootfs$f"
  fi
}

# Exactly the libraries the binaries need: what the dynamic loader resolves for them.
libs=()
for bin in podwranglerd pwctl; do
  out=$(ldd "$rootfs/usr/bin/$bin") || { echo "build-image.sh: ldd $bin failed: $out" >&2; exit 1; }
  if grep -q "not found" <<<"$out"; then
    echo "build-image.sh: $bin needs libraries this host lacks:" >&2
    grep "not found" <<<"$out" >&2
    exit 1
  fi
  while read -r lib; do libs+=("$lib"); done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out")
done
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)
for lib in "${libs[@]}"; do
  copy_file "$lib"
done

# CA certificates for TLS to API servers and web terminals (rustls reads SSL_CERT_FILE).
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || { echo "build-image.sh: $ca is missing (apt-get install ca-certificates)" >&2; exit 1; }
mkdir -p "$rootfs/etc/ssl/certs"
cp -L "$ca" "$rootfs$ca"

# Users and name lookups: only files (glibc has them built in), no shell anywhere.
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
podwrangler:x:10001:10001:PodWrangler daemon:/var/lib/podwrangler:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
podwrangler:x:10001:
nogroup:x:65534:
GROUP
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
mkdir -p "$rootfs/etc/podwrangler" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
chmod 1777 "$rootfs/tmp"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf" "$rootfs$ca"
# The daemon's state, owned by it: the database directory private to it, the socket directory
# as the packages make it (the socket itself is 0660). Everything else is root's.
mkdir -p "$rootfs/var/lib/podwrangler" "$rootfs/run/podwrangler"
chmod 0700 "$rootfs/var/lib/podwrangler"
chmod 0750 "$rootfs/run/podwrangler"
chown -R 0:0 "$rootfs"
chown 10001:10001 "$rootfs/var/lib/podwrangler" "$rootfs/run/podwrangler"
# One archive, so that owners and modes reach the image as they are here (COPY would make
# everything root's, and COPY --chown the parent directories too); sorted and dated by the
# last commit, so the same binaries give the same layer.
find "$rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar --numeric-owner --sort=name --mtime="@$SOURCE_DATE_EPOCH" --format=gnu \
  -C "$rootfs" -cf "$ctx/rootfs.tar" .

echo "build-image.sh: buildah bud $image:$version" >&2
previous=$(buildah images -q --no-trunc "$image:$version" 2>/dev/null | head -1 || true)
buildah bud --quiet --format docker --pull-never --timestamp "$SOURCE_DATE_EPOCH" \
  --build-arg "VERSION=$version" \
  -f "$root/deploy/image/Containerfile" -t "$image:$version" -t "$image:latest" "$ctx" >&2
# The image this build replaced, unless something else still uses it.
current=$(buildah images -q --no-trunc "$image:$version" | head -1)
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  buildah rmi "$previous" >/dev/null 2>&1 || true
fi
size=$(buildah images --format '{{.Size}}' "$image:$version" | head -1)
echo "build-image.sh: $image:$version ($size; $(du -sh "$rootfs" | cut -f1) unpacked, ${#libs[@]} libraries)" >&2
echo "$image:$version"
