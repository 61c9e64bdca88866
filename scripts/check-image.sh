#!/usr/bin/env bash
# Checks the PodWrangler image that scripts/build-image.sh built, by running it from its own root
# file system: `buildah from` + `buildah mount`, then each program in new mount and PID
# namespaces (unshare), chrooted into the image, as uid 10001, the root file system read-only
# and volumes bound where the image declares them. (`podman run` does not work on the CI
# machines; chroot shares the host's network namespace, so everything talks over loopback.)
#
#   1. the image's config: user 10001, entrypoint `podwranglerd --system`, a HEALTHCHECK running
#      `pwctl health`, volumes /var/lib/podwrangler and /run/podwrangler, port 8000
#   2. its files: the two binaries, exactly the shared libraries the image's own dynamic loader
#      resolves for them (nothing missing, nothing extra), CA certificates, passwd and group
#      with podwrangler 10001, no shell, no set-id file, the state directories owned by 10001
#   3. `podwranglerd --version` and `pwctl --version`
#   4. the daemon as the image starts it (entrypoint and environment), SQLite on the volume,
#      against podsim on the host: it runs as uid 10001 with no capabilities, socket 0660 and
#      database 0600 owned by 10001; pwctl in the image registers a pod over the socket from a
#      kubeconfig and runs a command in it; the history names the caller unix:10001(podwrangler);
#      TCP needs the API key; a read key made by the image's `podwranglerd key add` and mounted
#      as api-keys.toml may read but not register; the image's HEALTHCHECK command passes
#   5. in-cluster: a service-account directory at the kubelet's path with podsim's token and CA,
#      KUBERNETES_SERVICE_HOST/PORT set; `pwctl pod import --cluster local` and a fan-out
#   6. token rotation: podsim restarted on the same port with another token (and CA) and the
#      service-account files replaced as the kubelet does (a `..data` symlink swap); the same
#      daemon process picks them up within its one-minute re-read and imports and runs again
#   7. SIGTERM stops the daemon cleanly; the HEALTHCHECK then fails
#   8. the image's daemon against PostgreSQL (libpq and its libraries from the image)
#   9. deploy/tests/test_manifests.py: the Kubernetes manifests (kubernetes-validate for 1.32,
#      the "restricted" Pod Security Standard, least-privilege RBAC) and the compose files
#
# `scripts/check-image.sh --manifests` runs only step 9 (no image, no root; needs kubectl,
# python3 with PyYAML and kubernetes-validate).
#
# Prints PASS/FAIL lines; exits non-zero on any failure. Run as root. Environment:
#   PODWRANGLER_IMAGE      the image (default localhost/podwrangler:latest)
#   PODWRANGLER_PODSIM     the podsim binary (default: found in the target dir, else built)
#   PODWRANGLER_TEST_DATABASE_URL  a PostgreSQL server for step 8 (default: a throwaway one
#                          from scripts/pg.sh when the server binaries are installed)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)
target=${CARGO_TARGET_DIR:-$root/target}
image=${PODWRANGLER_IMAGE:-localhost/podwrangler:latest}

failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
info() { printf '      %s\n' "$*"; }
step() { printf '\n--- %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }
indent() { sed 's/^/      | /' | head -"${1:-20}"; }
check() {  # DESCRIPTION COMMAND...: PASS when the command succeeds, FAIL with its output otherwise
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then pass "$what"; else fail "$what"; [ -n "$out" ] && printf '%s\n' "$out" | indent 30; fi
  return 0
}
die() { fail "$*"; echo "check-image.sh: stopping early ($failures failure(s))"; exit 1; }
wait_for() {  # SECONDS COMMAND...: poll until the command succeeds
  local deadline=$(( $(date +%s) + $1 ))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

manifests() {
  local out
  command -v kubectl >/dev/null || { fail "kubectl is missing (the manifests are rendered with kubectl kustomize)"; return; }
  python3 -c 'import yaml, kubernetes_validate' 2>/dev/null \
    || { fail "python3 lacks PyYAML or kubernetes-validate (pip install kubernetes-validate)"; return; }
  if out=$(python3 deploy/tests/test_manifests.py 2>&1); then
    pass "deploy/tests/test_manifests.py: $(grep -E '^Ran ' <<<"$out"), $(tail -1 <<<"$out")"
    grep -E '\.\.\. skipped' <<<"$out" | sed 's/^/      /'
  else
    fail "deploy/tests/test_manifests.py"; printf '%s\n' "$out" | grep -v '\.\.\. ok$' | indent 60
  fi
}
if [ "${1:-}" = --manifests ]; then
  step "9. manifests and compose files"
  manifests
  [ "$failures" = 0 ] || exit 1
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "check-image.sh: run as root (buildah mount, unshare, chroot)" >&2; exit 2; }
for tool in buildah unshare chroot readelf python3 curl; do
  command -v "$tool" >/dev/null || { echo "check-image.sh: $tool is missing" >&2; exit 2; }
done
buildah inspect --type image "$image" >/dev/null 2>&1 \
  || { echo "check-image.sh: no image $image; run scripts/build-image.sh (make image)" >&2; exit 2; }

work=$(mktemp -d /tmp/podwrangler-image.XXXXXX)
chmod 0755 "$work"
ctr=
pids=()      # background processes (unshare ignores SIGTERM: its child is in daemons)
daemons=()
pgdb=
pg_started=0
cleanup() {
  local p
  for p in "${daemons[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${daemons[@]}"; do wait_for 15 sh -c "! kill -0 $p" || kill -KILL "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$pgdb" ]; then psql -q "$PODWRANGLER_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1; fi
  [ "$pg_started" = 1 ] && pg_stop >/dev/null 2>&1
  if [ -n "$ctr" ]; then buildah umount "$ctr" >/dev/null 2>&1; buildah rm "$ctr" >/dev/null 2>&1; fi
  rm -rf "$work"
  return 0
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
step "1. the image's configuration ($image)"
buildah inspect --type image "$image" >"$work/inspect.json"
cfg() { python3 - "$work/inspect.json" "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = (d.get("Docker") or {}).get("config") or d["OCIv1"]["config"]
what = sys.argv[2]
if what == "json":
    print(json.dumps(c, indent=1, sort_keys=True))
elif what == "env":
    print("\n".join(c.get("Env") or []))
elif what == "entrypoint":
    print("\n".join((c.get("Entrypoint") or []) + (c.get("Cmd") or [])))
elif what == "healthcheck":
    t = (c.get("Healthcheck") or {}).get("Test") or []
    print("\n".join(t[1:] if t[:1] == ["CMD"] else []))
PY
}
cfg json >"$work/config.json"
check "runs as USER 10001:10001" python3 -c \
  'import json,sys; c=json.load(open(sys.argv[1])); sys.exit(c.get("User") != "10001:10001")' "$work/config.json"
check "entrypoint is podwranglerd --system" python3 -c \
  'import json,sys; c=json.load(open(sys.argv[1])); sys.exit(c.get("Entrypoint") != ["/usr/bin/podwranglerd", "--system"])' "$work/config.json"
check "HEALTHCHECK runs pwctl health" python3 -c \
  'import json,sys; h=json.load(open(sys.argv[1])).get("Healthcheck") or {}; sys.exit(h.get("Test") != ["CMD", "/usr/bin/pwctl", "health"])' "$work/config.json"
check "volumes /var/lib/podwrangler and /run/podwrangler, port 8000" python3 -c \
  'import json,sys; c=json.load(open(sys.argv[1])); sys.exit(sorted(c.get("Volumes") or {}) != ["/run/podwrangler", "/var/lib/podwrangler"] or "8000/tcp" not in (c.get("ExposedPorts") or {}))' "$work/config.json"
mapfile -t image_env < <(cfg env)
check "the socket path is in the environment (daemon and pwctl agree)" \
  grep -qx 'PODWRANGLER_SOCKET=/run/podwrangler/podwranglerd.sock' <(printf '%s\n' "${image_env[@]}")
mapfile -t entrypoint < <(cfg entrypoint)
mapfile -t healthcheck < <(cfg healthcheck)
size=$(buildah images --format '{{.Size}}' "$image" | head -1)
info "image size: $size"

ctr=$(buildah from --pull-never "$image" 2>"$work/from.log") || die "buildah from: $(cat "$work/from.log")"
R=$(buildah mount "$ctr") || die "buildah mount $ctr"
info "root file system: $R"

# ---------------------------------------------------------------------------------------------
step "2. the files in the image"
interp=$(readelf -p .interp "$R/usr/bin/podwranglerd" 2>/dev/null | awk '/\//{print $NF}')
[ -n "$interp" ] || die "cannot read podwranglerd's program interpreter"
info "dynamic loader: $interp"
: >"$work/resolved"
for bin in podwranglerd pwctl; do
  # The image's own loader lists what it resolves inside the image.
  if out=$(chroot --userspec=10001:10001 "$R" "$interp" --list "/usr/bin/$bin" 2>&1) && ! grep -q 'not found' <<<"$out"; then
    pass "$bin: every library it needs is in the image ($(grep -c '=>' <<<"$out") libraries)"
  else
    fail "$bin: libraries missing in the image"; printf '%s\n' "$out" | indent
  fi
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out" >>"$work/resolved"
done
# Every regular file, by its real path inside the image.
(cd "$R" && find . -type f | sed 's|^\.||' | sort) >"$work/files"
# The real path of each inside the image: links resolved as the image sees them (an absolute
# target is relative to the image's root).
sort -u "$work/resolved" | python3 -c '
import os, sys
root = sys.argv[1]
def resolve(path, depth=0):
    parts = [p for p in path.split("/") if p]
    done = ""
    while parts:
        part = parts.pop(0)
        if part == "..":
            done = os.path.dirname(done)
            continue
        candidate = done + "/" + part
        if os.path.islink(root + candidate):
            if depth > 40:
                raise SystemExit("link loop at " + candidate)
            target = os.readlink(root + candidate)
            base = "" if target.startswith("/") else done
            return resolve(base + "/" + target + "/" + "/".join(parts), depth + 1)
        done = candidate
    return done
for line in sys.stdin:
    print(resolve(line.strip()))
' "$R" | sort -u >"$work/libs"
expected=$( (printf '%s\n' /usr/bin/podwranglerd /usr/bin/pwctl /etc/passwd /etc/group /etc/nsswitch.conf \
  /etc/ssl/certs/ca-certificates.crt; cat "$work/libs") | sort -u)
if [ "$expected" = "$(cat "$work/files")" ]; then
  pass "exactly the binaries, their $(wc -l <"$work/libs") libraries, CA certificates, passwd, group, nsswitch.conf"
else
  fail "the image's files differ from what the binaries need (< expected, > found)"
  diff <(printf '%s\n' "$expected") "$work/files" | indent 30
fi
check "no shell in the image" sh -c "! [ -e '$R/bin/sh' ] && ! [ -e '$R/usr/bin/sh' ]"
check "no set-user-id or set-group-id file" sh -c "[ -z \"\$(find '$R' -perm /6000 -type f)\" ]"
check "CA certificates are the build host's bundle" cmp "$R/etc/ssl/certs/ca-certificates.crt" /etc/ssl/certs/ca-certificates.crt
check "passwd: podwrangler is 10001:10001, home /var/lib/podwrangler, no login shell" \
  grep -qx 'podwrangler:x:10001:10001:PodWrangler daemon:/var/lib/podwrangler:/usr/sbin/nologin' "$R/etc/passwd"
check "group: podwrangler is 10001" grep -qx 'podwrangler:x:10001:' "$R/etc/group"
check "/var/lib/podwrangler is 0700 10001:10001" test "$(stat -c '%a %u:%g' "$R/var/lib/podwrangler")" = "700 10001:10001"
check "/run/podwrangler is 0750 10001:10001" test "$(stat -c '%a %u:%g' "$R/run/podwrangler")" = "750 10001:10001"
check "/tmp is 1777" test "$(stat -c '%a' "$R/tmp")" = "1777"
check "everything else belongs to root and is not writable by others" sh -c \
  "[ -z \"\$(find '$R' -path '$R/var/lib/podwrangler' -prune -o -path '$R/run/podwrangler' -prune -o -path '$R/tmp' -prune -o \( ! -user 0 -o -perm -o+w ! -type l \) -print)\" ]"

# ---------------------------------------------------------------------------------------------
# Runs a program from the image as a container runtime would: its own mount and PID
# namespaces, the root file system read-only, the volumes and the service-account directory
# bound in, /proc and a private /tmp mounted, the image's environment plus VAR=VALUE arguments,
# as uid and gid 10001. Usage: in_image [VAR=VALUE...] -- PROGRAM ARGS...
mkdir -p "$work/state" "$work/run" "$work/etc" "$work/sa" "$work/client"
chown 10001:10001 "$work/state" "$work/run" "$work/client"
chmod 0700 "$work/state" "$work/client"
chmod 0750 "$work/run"
# Mount points a runtime makes in the container's own layer (the image is not changed).
mkdir -p "$R/var/run/secrets/kubernetes.io/serviceaccount" "$R/home/client"
cat >"$work/enter" <<'SH'
#!/bin/sh
# Inside the new namespaces: mount, then become the image's program.
set -e
mount --bind "$R" "$R"
mount -o remount,bind,ro "$R"
mount --bind "$W/state" "$R/var/lib/podwrangler"
mount --bind "$W/run" "$R/run/podwrangler"
mount --bind -o ro "$W/etc" "$R/etc/podwrangler"
mount --bind -o ro "$W/sa" "$R/var/run/secrets/kubernetes.io/serviceaccount"
mount --bind "$W/client" "$R/home/client"
mount -t tmpfs -o mode=1777,size=64m tmpfs "$R/tmp"
mount -t proc proc "$R/proc"
vars=
while [ "$1" != -- ]; do vars="$vars
$1"; shift; done
shift
IFS='
'
set -f
exec env -i $IMAGE_ENV $vars chroot --userspec=10001:10001 "$R" "$@"
SH
chmod 0755 "$work/enter"
in_image() {
  R=$R W=$work IMAGE_ENV=$(printf '%s\n' "${image_env[@]}") \
    unshare --mount --pid --fork --kill-child -- "$work/enter" "$@"
}
pw() { in_image -- /usr/bin/pwctl "$@"; }

# ---------------------------------------------------------------------------------------------
step "3. versions"
version=$(in_image -- /usr/bin/podwranglerd --version 2>&1) && [[ $version == "podwranglerd "* ]] \
  && pass "podwranglerd --version as uid 10001: $version" || { fail "podwranglerd --version"; printf '%s\n' "$version" | indent; }
out=$(pw --version 2>&1) && [[ $out == *pwctl* ]] \
  && pass "pwctl --version as uid 10001: $out" || { fail "pwctl --version"; printf '%s\n' "$out" | indent; }
out=$(in_image -- /usr/bin/podwranglerd --system --check-config 2>&1) \
  && pass "podwranglerd --system --check-config with the image's defaults" || { fail "--check-config"; printf '%s\n' "$out" | indent; }

# ---------------------------------------------------------------------------------------------
step "4. the daemon from the image, against podsim on the host"
podsim=${PODWRANGLER_PODSIM:-}
if [ -z "$podsim" ]; then
  for p in "$target/debug/podsim" "$target/release/podsim"; do [ -x "$p" ] && { podsim=$p; break; }; done
fi
if [ -z "$podsim" ]; then
  cargo build -q -p podsim >&2 || die "cargo build -p podsim"
  podsim=$target/debug/podsim
fi
mkdir -m 0755 "$work/pods"
start_podsim() {  # LISTEN TOKEN OUT: podsim with 3 pods, TLS with its own CA; its JSON line in OUT
  "$podsim" --listen "$1" --pods 3 --token "$2" --workdir "$work/pods" --kubeconfig-out "$3.kubeconfig" \
    >"$3" 2>"$3.log" &
  podsim_pid=$!
  pids+=("$podsim_pid")
  wait_for 30 python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$3"
}
js() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
start_podsim 127.0.0.1:0 image-token-one "$work/podsim1.json" || die "podsim did not start: $(tail -5 "$work/podsim1.json.log")"
http_base=$(js "$work/podsim1.json" 'd["http_base"]')
port=${http_base##*:}
port=${port%%/*}
pass "podsim with 3 pods at $http_base (TLS, its own CA)"

# The service account as the kubelet lays it out: a timestamped directory, ..data pointing at
# it, and token, ca.crt and namespace linked through ..data.
sa_write() {  # TOKEN PODSIM_JSON
  local v="..$(date +%Y_%m_%d_%H_%M_%S).$RANDOM" old
  old=$(readlink "$work/sa/..data" 2>/dev/null || true)
  mkdir "$work/sa/$v"
  printf '%s' "$1" >"$work/sa/$v/token"
  js "$2" 'd["ca_cert_pem"]' >"$work/sa/$v/ca.crt"
  printf 'default' >"$work/sa/$v/namespace"
  chmod 0644 "$work/sa/$v"/*
  ln -s "$v" "$work/sa/..data_tmp"
  mv -T "$work/sa/..data_tmp" "$work/sa/..data"
  for f in token ca.crt namespace; do [ -L "$work/sa/$f" ] || ln -s "..data/$f" "$work/sa/$f"; done
  [ -n "$old" ] && rm -rf "${work:?}/sa/$old"
  return 0
}
sa_write image-token-one "$work/podsim1.json"
printf '[clusters.local]\nin_cluster = true\n' >"$work/etc/podwranglerd.toml"
chmod 0644 "$work/etc/podwranglerd.toml"
install -o 10001 -g 10001 -m 0600 "$work/podsim1.json.kubeconfig" "$work/client/kubeconfig"
api_key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
# A named key with the read scope, made by the image's `podwranglerd key add` and mounted beside
# the config as api-keys.toml (what the Kubernetes Secret podwrangler-api-keys does).
install -o 10001 -g 10001 -m 0600 /dev/null "$work/client/podwranglerd.toml"
read_key=$(in_image -- /usr/bin/podwranglerd --config /home/client/podwranglerd.toml key add dashboard --scope read 2>"$work/key-add.log")
if [ -n "$read_key" ] && [ -s "$work/client/api-keys.toml" ]; then
  install -m 0644 "$work/client/api-keys.toml" "$work/etc/api-keys.toml"
  pass "podwranglerd key add in the image wrote api-keys.toml (a read key)"
else
  fail "podwranglerd key add in the image"; indent <"$work/key-add.log"
fi

start_daemon() {  # LOG [VAR=VALUE...]: the image's entrypoint, as a runtime starts it
  local log=$1
  shift
  rm -f "$work/run/ready.json"
  # unshare itself (not a subshell) in the background: its one child is the daemon.
  R=$R W=$work IMAGE_ENV=$(printf '%s\n' "${image_env[@]}") \
    unshare --mount --pid --fork --kill-child -- "$work/enter" \
    PODWRANGLER_API_HOST=127.0.0.1 PODWRANGLER_API_PORT=0 PODWRANGLER_API_KEY="$api_key" \
    KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$port" "$@" \
    -- "${entrypoint[@]}" --ready-file /run/podwrangler/ready.json >"$log" 2>&1 &
  ns_pid=$!
  pids+=("$ns_pid")
  wait_for 60 test -s "$work/run/ready.json" || { indent 30 <"$log"; return 1; }
  daemon_pid=$(awk '{print $1}' "/proc/$ns_pid/task/$ns_pid/children")
  [ -n "$daemon_pid" ] && daemons+=("$daemon_pid")
}
start_daemon "$work/daemon.log" || die "the daemon from the image did not become ready"
tcp=$(js "$work/run/ready.json" 'd["tcp"]')
pass "the image's entrypoint (${entrypoint[*]}) is ready: socket and TCP $tcp"

status() { awk -v k="$1:" '$1 == k {$1 = ""; print substr($0, 2)}' "/proc/$daemon_pid/status"; }
ids_ok() {
  [ "$(status Uid)" = "10001 10001 10001 10001" ] && [ "$(status Gid)" = "10001 10001 10001 10001" ] \
    || { grep -E '^(Uid|Gid|Groups)' "/proc/$daemon_pid/status"; return 1; }
}
check "the daemon runs as uid 10001 and gid 10001" ids_ok
check "the daemon has no capabilities" test "$(status CapEff)" = 0000000000000000
check "the daemon runs from the image's root file system" test "$(readlink "/proc/$daemon_pid/root")" = "$R"
check "the socket is srw-rw---- 10001:10001" test "$(stat -c '%A %u:%g' "$work/run/podwranglerd.sock")" = "srw-rw---- 10001:10001"
check "the SQLite database is 0600 10001:10001 on the volume" test "$(stat -c '%a %u:%g' "$work/state/podwrangler.db")" = "600 10001:10001"
check "pwctl health over the socket (the image's environment)" pw health
check "the image's HEALTHCHECK command passes" in_image -- "${healthcheck[@]}"
check "TCP: GET /health needs no key" curl -fsS "http://$tcp/health"
check "TCP: the API refuses a request without the key (401)" test "$(curl -s -o /dev/null -w '%{http_code}' "http://$tcp/api/v1/pods/")" = 401
check "TCP: pwctl with --api-key" pw --api-url "http://$tcp" --api-key "$api_key" health
check "TCP: the read key from api-keys.toml may list pods (200)" \
  test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $read_key" "http://$tcp/api/v1/pods/")" = 200
check "TCP: the read key may not register a pod (403)" test "$(curl -s -o /dev/null -w '%{http_code}' \
  -H "Authorization: Bearer $read_key" -H 'content-type: application/json' \
  -d '{"alias":"x","provider":"plaintty","url":"ws://127.0.0.1:1/exec/1/?token=t&pod=p"}' "http://$tcp/api/v1/pods/")" = 403

out=$(pw pod add --alias direct-0 --provider kubernetes --kubeconfig /home/client/kubeconfig \
  --pod-name web-5d8f7-00000 -n default 2>&1) && pass "pwctl pod add over the socket, credentials from a kubeconfig read by pwctl in the image" \
  || { fail "pwctl pod add"; printf '%s\n' "$out" | indent; }
out=$(pw exec run direct-0 -- 'echo "$POD_NAME"' 2>&1)
if [ "$out" = web-5d8f7-00000 ]; then pass "a command ran in the pod (printed its POD_NAME)"; else fail "pwctl exec run direct-0"; printf '%s\n' "$out" | indent; fi
last_actor() {
  pw --json exec history --limit 5 | python3 -c '
import json, sys
d = json.load(sys.stdin)
items = d["items"] if isinstance(d, dict) else d
sys.exit(0 if items and items[0]["actor"] == "unix:10001(podwrangler)" else "actor: " + repr(items[:1]))'
}
check "the history names the caller unix:10001(podwrangler) (names from the image's passwd)" last_actor

# ---------------------------------------------------------------------------------------------
step "5. in-cluster: the service account at the kubelet's path"
clusters_listed() { pw clusters | grep -E 'local.*in_cluster'; }
check "pwctl clusters lists local (in_cluster)" clusters_listed
out=$(pw --json pod import --cluster local -n default -l app=web --prefix ic- --tag ic 2>&1)
if python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(len(d["registered"]) != 3)' "$out" 2>/dev/null; then
  pass "pwctl pod import --cluster local registered 3 pods through the service account"
else
  fail "pwctl pod import --cluster local"; printf '%s\n' "$out" | indent; tail -5 "$work/daemon.log" | indent
fi
fanout() {  # WHAT: fan-out over tag ic; each pod prints its own name
  local out
  out=$(pw --json exec run-many --tag ic 'echo "pod=$POD_NAME"' 2>&1)
  if python3 -c '
import json, sys
d = json.loads(sys.argv[1])
names = {r["stdout"].strip() for r in d["results"] if r["status"] == "succeeded"}
sys.exit(0 if d["succeeded"] == 3 and len(names) == 3 else 1)' "$out" 2>/dev/null; then
    pass "$1"
  else
    fail "$1"; printf '%s\n' "$out" | indent
  fi
}
fanout "fan-out over the imported pods: 3 succeeded, each printed its own POD_NAME"

# ---------------------------------------------------------------------------------------------
step "6. the service-account token rotates; the daemon keeps running"
pw pod remove direct-0 >/dev/null 2>&1   # it holds the old token itself, not the cluster's
before_start=$(awk '{print $22}' "/proc/$daemon_pid/stat")
kill "$podsim_pid"; wait "$podsim_pid" 2>/dev/null
start_podsim "127.0.0.1:$port" image-token-two "$work/podsim2.json" \
  || die "podsim did not restart on port $port: $(tail -5 "$work/podsim2.json.log")"
sa_write image-token-two "$work/podsim2.json"
rotated=$(date +%s)
info "podsim now accepts only the new token (and has a new CA); the service-account files are replaced"
if out=$(pw --json pod import --cluster local -n default -l app=web --prefix ic- --tag ic 2>&1); then
  info "the first import after the rotation already worked (the cached credentials had expired)"
else
  info "the first import after the rotation failed, as expected while the old token is cached: $(printf '%s' "$out" | head -1 | cut -c1-150)"
fi
ok=0
while [ $(( $(date +%s) - rotated )) -lt 100 ]; do
  if out=$(pw --json pod import --cluster local -n default -l app=web --prefix ic- --tag ic 2>&1) \
     && python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(len(d["skipped"]) != 3)' "$out"; then
    ok=1; break
  fi
  sleep 3
done
if [ "$ok" = 1 ]; then
  pass "the rotated token and CA were picked up $(( $(date +%s) - rotated ))s after the rotation (import works again)"
else
  fail "the daemon did not pick up the rotated token within 100 s"; printf '%s\n' "$out" | indent; tail -5 "$work/daemon.log" | indent
fi
check "the same daemon process (no restart)" test "$(awk '{print $22}' "/proc/$daemon_pid/stat" 2>/dev/null)" = "$before_start"
# The pods' sessions died with the old podsim; they reconnect with the new credentials.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  out=$(pw --json exec run-many --tag ic 'echo "pod=$POD_NAME"' 2>&1) \
    && python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1])["succeeded"] != 3)' "$out" 2>/dev/null && break
  sleep 3
done
fanout "fan-out after the rotation: 3 succeeded on the new podsim"
check "no token in the daemon's log" sh -c "! grep -q -e image-token-one -e image-token-two '$work/daemon.log'"

# ---------------------------------------------------------------------------------------------
step "7. stop"
kill -TERM "$daemon_pid"
if wait_for 30 sh -c "! kill -0 $ns_pid"; then
  wait "$ns_pid"; code=$?
  if [ "$code" = 0 ]; then pass "SIGTERM: the daemon stopped cleanly (exit 0)"; else fail "the daemon exited $code after SIGTERM"; tail -10 "$work/daemon.log" | indent; fi
else
  fail "the daemon did not stop within 30 s of SIGTERM"
fi
healthcheck_fails() { ! in_image -- "${healthcheck[@]}"; }
check "the HEALTHCHECK fails once the daemon is gone" healthcheck_fails

# ---------------------------------------------------------------------------------------------
step "8. PostgreSQL"
if [ -z "${PODWRANGLER_TEST_DATABASE_URL:-}" ]; then
  source scripts/pg.sh
  if pg_start >/dev/null 2>&1; then pg_started=1; fi
fi
if [ -z "${PODWRANGLER_TEST_DATABASE_URL:-}" ] || ! command -v psql >/dev/null; then
  info "SKIPPED: no PostgreSQL server (set PODWRANGLER_TEST_DATABASE_URL or install postgresql)"
  [ -n "${CI:-}" ] && fail "CI needs the PostgreSQL check"
else
  pgdb=podwrangler_image_$$
  psql -q "$PODWRANGLER_TEST_DATABASE_URL" -c "CREATE DATABASE $pgdb" >/dev/null || die "cannot create database $pgdb"
  pgurl=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
    "$PODWRANGLER_TEST_DATABASE_URL" "$pgdb")
  if start_daemon "$work/daemon-pg.log" PODWRANGLER_DATABASE_URL="$pgurl"; then
    pass "the image's daemon is ready with PostgreSQL"
    pg_health() {
      pw --json health | python3 -c 'import json,sys; h=json.load(sys.stdin); sys.exit(not (h["database"]["backend"] == "postgres" and h["database"]["ok"]))'
    }
    check "health: database backend postgres, ok" pg_health
    pw pod import --cluster local -n default -l app=web --prefix pg- --tag pg >/dev/null 2>&1
    out=$(pw exec run pg-web-5d8f7-00001 -- 'echo "$POD_NAME"' 2>&1)
    if [ "$out" = web-5d8f7-00001 ]; then pass "import and a command with PostgreSQL"; else fail "exec with PostgreSQL"; printf '%s\n' "$out" | indent; fi
    rows=$(psql -tA "$pgurl" -c "SELECT count(*) FROM commands WHERE status = 'succeeded'" 2>&1)
    if [ "$rows" -ge 1 ] 2>/dev/null; then pass "PostgreSQL holds the history ($rows command)"; else fail "commands in PostgreSQL: '$rows'"; fi
    kill -TERM "$daemon_pid"
    wait_for 30 sh -c "! kill -0 $ns_pid" || fail "the PostgreSQL daemon did not stop"
  else
    fail "the image's daemon with PostgreSQL did not become ready"
  fi
fi

# ---------------------------------------------------------------------------------------------
step "9. manifests and compose files"
manifests

echo
echo "image: $image ($size)"
if [ "$failures" -gt 0 ]; then
  echo "check-image.sh: $failures failure(s) ($(( $(date +%s) - started ))s)"
  exit 1
fi
echo "check-image.sh: all checks passed ($(( $(date +%s) - started ))s)"
