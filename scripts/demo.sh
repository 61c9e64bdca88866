#!/usr/bin/env bash
# PodWrangler in one go, on a fresh machine: build, start podsim (5 simulated pods) and a
# user-mode podwranglerd on embedded SQLite in a temp dir, register the pods (PlainTTY URLs with
# `pwctl pod add`, and the Kubernetes API with `pwctl pod import`), run a command, fan one out
# to every pod (as a table, grouped by output, and streamed), copy a file in, follow podsim's pods with a pod
# set (through a rollout), show the history, and stop everything. Touches none of the user's
# real state.
# Exits non-zero if any step fails. `make demo` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then BOLD=$'\033[1m' DIM=$'\033[2m' OFF=$'\033[0m'; else BOLD="" DIM="" OFF=""; fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }

say "building (cargo build --workspace --bins)"
cargo build --workspace --bins
BIN="${CARGO_TARGET_DIR:-target}/debug"
for b in podsim podwranglerd pwctl; do
  [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is missing after the build" >&2; exit 1; }
done

DEMO="$(mktemp -d "${TMPDIR:-/tmp}/podwrangler-demo.XXXXXX")"
SIM_PID=""
DAEMON_PID=""
cleanup() {
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "demo: FAILED (exit $status); the last daemon and podsim log lines:" >&2
    tail -n 15 "$DEMO/podwranglerd.log" 2>/dev/null >&2 || true
    tail -n 5 "$DEMO/podsim.log" 2>/dev/null >&2 || true
  fi
  for pid in $DAEMON_PID $SIM_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $DAEMON_PID $SIM_PID; do
    # The daemon gets its grace period; then it is killed for sure.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$DEMO"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Nothing of the caller's PodWrangler settings may leak in.
while IFS='=' read -r name _; do
  case "$name" in PODWRANGLER_*) unset "$name" ;; esac
done < <(env)

# wait_for FILE PID WHAT: until FILE has content, failing if PID dies or 60 s pass.
wait_for() {
  for _ in $(seq 600); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "demo: $3 exited before it was ready" >&2; return 1; }
    sleep 0.1
  done
  echo "demo: $3 was not ready within 60 s" >&2
  return 1
}

say "starting podsim with 5 pods"
"$BIN/podsim" --listen 127.0.0.1:0 --pods 5 --token demo-token --plain-http \
  --kubeconfig-out "$DEMO/kubeconfig" --workdir "$DEMO/pods" \
  >"$DEMO/podsim.json" 2>"$DEMO/podsim.log" &
SIM_PID=$!
wait_for "$DEMO/podsim.json" "$SIM_PID" podsim
mapfile -t URLS < <(grep -o '"plaintty_url":"[^"]*"' "$DEMO/podsim.json" | sed 's/^"plaintty_url":"//; s/"$//')
[ "${#URLS[@]}" -eq 5 ] || { echo "demo: podsim listed ${#URLS[@]} pods, expected 5" >&2; exit 1; }
echo "podsim: $(grep -o '"http_base":"[^"]*"' "$DEMO/podsim.json" | sed 's/.*:"//; s/"$//'), kubeconfig $DEMO/kubeconfig"

say "starting podwranglerd (user mode, SQLite in $DEMO)"
SOCK="$DEMO/run/podwranglerd.sock"
SIM_BASE="$(grep -o '"http_base":"[^"]*"' "$DEMO/podsim.json" | sed 's/.*:"//; s/"$//')"
SIM_ADDR="${SIM_BASE#http://}"
# podsim as a cluster of the daemon's configuration, for the pod set below.
(umask 077; printf '%s\n' demo-token >"$DEMO/sim.token")
printf '[clusters.sim]\nserver = "%s"\ntoken_file = "%s"\n' "$SIM_BASE" "$DEMO/sim.token" >"$DEMO/podwranglerd.toml"
"$BIN/podwranglerd" --user --config "$DEMO/podwranglerd.toml" --no-tcp --socket "$SOCK" \
  --database-url "$DEMO/podwrangler.db" --ready-file "$DEMO/ready.json" \
  2>"$DEMO/podwranglerd.log" &
DAEMON_PID=$!
wait_for "$DEMO/ready.json" "$DAEMON_PID" podwranglerd

pw() {
  printf '%s$ pwctl' "$DIM"
  printf ' %q' "$@"
  printf '%s\n' "$OFF"
  "$BIN/pwctl" --socket "$SOCK" "$@"
}

say "is it up?"
pw health

say "registering pods: two PlainTTY web terminals by URL..."
pw pod add --alias web-0 --url "${URLS[0]}" --tag plaintty
pw pod add --alias web-1 --url "${URLS[1]}" --tag plaintty
say "...and all five through the Kubernetes API"
pw pod import --kubeconfig "$DEMO/kubeconfig" --namespace default --prefix k8s- --tag k8s
pw pod list

say "one command in one pod (stdout, stderr and the exit code pass through)"
pw exec run web-0 'echo "hello from $POD_NAME in $(pwd)"; uname -s'
pw exec run k8s-web-5d8f7-00004 -- 'cd /tmp && echo "cwd is now $(pwd)"'

say "fan-out to every pod"
pw exec run-many 'echo $POD_NAME; uname -s' --all

say "grouped fan-out: pods with the same output fold into one block, largest first"
# Pods 00001 and 00003 answer differently; --diff shows how, against the largest group.
pw exec run-many --tag k8s --group --diff -- \
  'case $POD_NAME in *00001|*00003) echo "release 2.4.1";; *) echo "release 2.4.0";; esac'

say "live lines, prefixed by their pod"
pw exec run-many --tag k8s --stream -- 'echo starting; sleep 0.2; echo done'
say "copy a file into every k8s pod over their sessions; each pod checks its SHA-256"
head -c 65536 /dev/urandom >"$DEMO/blob.bin"
pw cp "$DEMO/blob.bin" :/tmp/blob.bin --tag k8s

say "a pod set: the daemon watches podsim's API and keeps every Ready web pod registered"
pw clusters
pw set add web --cluster sim -n default -l app=web
# members_ready N [OLD]: until the set has N ready members (none named like OLD, if given).
members_ready() {
  for _ in $(seq 600); do
    local shown
    shown="$("$BIN/pwctl" --socket "$SOCK" --json set show web)"
    if [ "$(grep -o '"state": *"ready"' <<<"$shown" | wc -l)" -eq "$1" ] \
      && [ "$(grep -o '"alias": *"web/' <<<"$shown" | wc -l)" -eq "$1" ] \
      && { [ -z "${2:-}" ] || ! grep -q "$2" <<<"$shown"; }; then
      return 0
    fi
    sleep 0.1
  done
  echo "demo: the pod set did not reach $1 ready members" >&2
  return 1
}
members_ready 5
pw set show web
pw exec run-many 'echo $POD_NAME' --set web

say "podsim rolls every web pod (new names, like a Deployment rollout); the set follows"
exec 3<>"/dev/tcp/${SIM_ADDR%:*}/${SIM_ADDR##*:}"
printf 'POST /_podsim/rollout HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n{"batch": 1, "interval_ms": 50}' "$SIM_ADDR" >&3
grep -q '"template_hash"' <&3 || { echo "demo: podsim did not start the rollout" >&2; exit 1; }
exec 3<&-
members_ready 5 'web-5d8f7-'
pw set show web
pw exec run-many 'echo $POD_NAME' --set web

say "history: every command names who ran it"
pw exec history --limit 10
say "the web set's history keeps the pods that are gone"
pw exec history --set web --limit 12

say "audit: who registered the pods"
pw audit --limit 5

say "done: everything worked"
