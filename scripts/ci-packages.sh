#!/usr/bin/env bash
# CI install checks for the podwrangler packages built by scripts/build-packages.sh. Runs as
# root on a machine where systemd is not PID 1, and changes that machine: it installs and
# purges the .deb, and creates (then deletes) two test users.
#
#   1. the units: `systemd-analyze verify` silent, `systemd-analyze security` at most 2.0
#   2. lintian on the .deb and rpmlint on the .rpm pass (suppressions: packaging/lintian-overrides,
#      packaging/rpmlint.toml, each with its reason)
#   3. `dpkg -i`: every file with its owner and mode, the user podwrangler and the groups
#      podwrangler and podwrangler-users, /etc/podwrangler 0750 root:podwrangler, the config
#      0640 root:podwrangler, /var/lib/podwrangler 0700, /run/podwrangler 2750
#      podwrangler:podwrangler-users, the conffile, enabled units
#   4. the installed daemon started as the unit starts it (its ExecStart, User, UMask, no
#      capabilities, NoNewPrivileges): READY=1 on NOTIFY_SOCKET, the socket srw-rw----
#      podwrangler:podwrangler-users, the database and its -wal/-shm 0600 podwrangler,
#      `pwctl health` as a member of podwrangler-users answers, a user outside the group is
#      refused, and that member can read neither the database nor the state directory nor
#      /etc/podwrangler's files; SIGHUP reloads, SIGTERM stops it cleanly
#   5. API keys (when `podwranglerd key` exists in this build): `podwranglerd key add` writes
#      api-keys.toml 0640 root:podwrangler and prints the key once; after SIGHUP a read key may
#      GET over TCP and is refused a POST (403 forbidden); revoked, it is refused (401)
#   6. the same as 4 under `systemd-socket-activate` (the socket handed over as the .socket unit
#      does, with its SocketUser=, SocketGroup=, SocketMode=)
#   7. end-to-end against PostgreSQL ($PODWRANGLER_TEST_DATABASE_URL, or a throwaway server):
#      podsim pods registered (PlainTTY and Kubernetes import), a fan-out, the history
#   8. `dpkg -i` over what an older package left (socket group podwrangler, 0640 database files,
#      a person in group podwrangler): the new owners and modes, the members named; a link in
#      the state directory does not make the upgrade change its target
#   9. `dpkg --purge` leaves nothing behind (file lists before and after compared)
#  10. the .rpm installed into a scratch root: its file list and modes match the .deb's; its
#      scriptlets and postinst agree with sysusers.d and tmpfiles.d
#
# Prints PASS/FAIL lines and exits non-zero on any failure. Environment:
#   PODWRANGLER_PACKAGES_DIR   where the packages are (default: target/packages)
#   PODWRANGLER_TEST_DATABASE_URL  a PostgreSQL server to create a scratch database in
#   PODWRANGLER_PODSIM         the podsim binary (default: found in the target dir, else built)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)
pkgdir=${PODWRANGLER_PACKAGES_DIR:-$root/target/packages}
target=${CARGO_TARGET_DIR:-$root/target}

failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
info() { printf '      %s\n' "$*"; }
step() { printf '\n--- %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }
# check DESCRIPTION COMMAND...: PASS when the command succeeds, FAIL with its output otherwise.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$what"
  else
    fail "$what"
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/      | /' | head -40
  fi
  return 0
}
die() { fail "$*"; echo "ci-packages.sh: stopping early (${failures} failure(s))"; exit 1; }

# Poll until COMMAND succeeds or SECONDS pass (a loaded 2-core machine can be slow).
wait_for() {
  local secs=$1 deadline
  shift
  deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

[ "$(id -u)" = 0 ] || { echo "ci-packages.sh: run as root (it installs the .deb)" >&2; exit 2; }
for tool in dpkg-deb lintian rpm rpmlint systemd-analyze systemd-socket-activate setpriv python3 psql; do
  command -v "$tool" >/dev/null || { echo "ci-packages.sh: $tool is missing" >&2; exit 2; }
done
deb=$(ls "$pkgdir"/podwrangler_*.deb 2>/dev/null | head -1)
rpmfile=$(ls "$pkgdir"/podwrangler-*.rpm 2>/dev/null | head -1)
[ -f "$deb" ] && [ -f "$rpmfile" ] \
  || { echo "ci-packages.sh: no packages in $pkgdir; run scripts/build-packages.sh" >&2; exit 2; }

SOCK=/run/podwrangler/podwranglerd.sock
UNIT=/usr/lib/systemd/system/podwranglerd.service
MEMBER=pwci-member
OUTSIDER=pwci-outsider
work=$(mktemp -d /tmp/podwrangler-pkgci.XXXXXX)
chmod 0755 "$work"
pids=()
pgdb=
pg_started=0

cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if dpkg -s podwrangler >/dev/null 2>&1; then dpkg --purge podwrangler >/dev/null 2>&1; fi
  userdel "$MEMBER" 2>/dev/null
  userdel "$OUTSIDER" 2>/dev/null
  if [ -n "$pgdb" ]; then psql -q "$PODWRANGLER_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1; fi
  [ "$pg_started" = 1 ] && pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

echo "ci-packages.sh: $(basename "$deb"), $(basename "$rpmfile")"
# This script purges the package when it ends; never do that to an installation it did not make.
if dpkg -s podwrangler >/dev/null 2>&1; then
  trap - EXIT
  rm -rf "$work"
  echo "ci-packages.sh: podwrangler is already installed here; this script installs and purges it," >&2
  echo "so remove it first if this machine is meant for that: dpkg --purge podwrangler" >&2
  exit 2
fi
for u in "$MEMBER" "$OUTSIDER"; do userdel "$u" 2>/dev/null; done

# Paths packages may touch, for the purge comparison. The user database files change content,
# not paths, except their `-` backups, which the first user creation on a machine may add.
snapshot() {
  find /etc /usr /var/lib /opt /srv -xdev \
    \( -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/lib/ucf \) -prune -o -print 2>/dev/null \
    | grep -Ev '^/etc/(passwd|group|shadow|gshadow)-$|^/etc/ld\.so\.cache$' | sort
}
snapshot >"$work/before.list"

# ---------------------------------------------------------------------------------------------
step "1. package contents and lint"
dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' | sed 's#\./#/#' | sort -k3 >"$work/deb.contents"
rpm -qp --queryformat '[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpmfile" 2>/dev/null \
  | sort -k3 >"$work/rpm.contents"
info "deb: $(grep -c '^-' "$work/deb.contents") files; rpm: $(grep -c '^-' "$work/rpm.contents") files"

check "deb depends on libpq5" sh -c "dpkg-deb -f '$deb' Depends | grep -q libpq5"
check "rpm requires libpq.so.5" sh -c "rpm -qp --requires '$rpmfile' 2>/dev/null | grep -q '^libpq.so.5'"
check "binaries are stripped" sh -c "
  dpkg-deb -x '$deb' '$work/debroot' &&
  for b in podwranglerd pwctl; do
    readelf -S '$work/debroot/usr/bin/'\$b | grep -q '\.symtab' && { echo \"\$b has a symbol table\"; exit 1; }
  done; true"

lintian_out=$work/lintian.txt
# (--show-overrides would make lintian 2.116 exit 2 on overridden tags, so it is left off.)
lintian --fail-on error,warning --display-info --info "$deb" >"$lintian_out" 2>&1
lintian_rc=$?
if [ $lintian_rc = 0 ] && ! grep -Eq '^[EW]: ' "$lintian_out"; then
  pass "lintian: no errors or warnings, $(grep -c '^I: ' "$lintian_out") info tags ($(grep -c '^podwrangler:' packaging/lintian-overrides) overrides with reasons in packaging/lintian-overrides)"
else
  fail "lintian (exit $lintian_rc)"
fi
grep -E '^[EWIO]: ' "$lintian_out" | sed 's/^/      | /' | head -40

rpmlint_out=$work/rpmlint.txt
rpmlint -c packaging/rpmlint.toml "$rpmfile" >"$rpmlint_out" 2>&1
rpmlint_rc=$?
summary=$(grep -E '[0-9]+ errors?, [0-9]+ warnings?' "$rpmlint_out" | tail -1)
if [ $rpmlint_rc = 0 ] && echo "$summary" | grep -Eq ' 0 errors?, 0 warnings?'; then
  pass "rpmlint ($summary)"
else
  fail "rpmlint (exit $rpmlint_rc: ${summary:-no summary})"
  sed 's/^/      | /' "$rpmlint_out" | head -40
fi

# ---------------------------------------------------------------------------------------------
step "2. dpkg -i"
if ! dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1; then
  sed 's/^/      | /' "$work/dpkg-i.log"
  die "dpkg -i $(basename "$deb")"
fi
pass "dpkg -i $(basename "$deb")"
check "dpkg --verify podwrangler (every packaged file on disk, unchanged)" dpkg --verify podwrangler
# The installed files with their modes, as the admin ends up with them (postinst included),
# for the comparison with the .rpm in step 9.
dpkg -L podwrangler | while read -r f; do [ -f "$f" ] && [ ! -L "$f" ] && stat -c '%a %n' "$f"; done \
  | sort -k2 >"$work/deb.installed"

# owner:group mode path, for everything the package or its scripts put on the system.
expect_mode() {
  local want="$1 $2" path=$3 got
  got=$(stat -c '%U:%G %a' "$path" 2>&1) || { fail "$path: missing"; return; }
  if [ "$got" = "$want" ]; then pass "$path $got"; else fail "$path is $got, want $want"; fi
}
expect_mode root:root 755 /usr/bin/podwranglerd
expect_mode root:root 755 /usr/bin/pwctl
# Admin-edited files: the service (group podwrangler) reads them, socket users cannot.
expect_mode root:podwrangler 750 /etc/podwrangler
expect_mode root:podwrangler 640 /etc/podwrangler/podwranglerd.toml
# The database's directory: the service user's alone.
expect_mode podwrangler:podwrangler 700 /var/lib/podwrangler
# The socket's directory (tmpfiles.d, run by postinst): socket users may enter it; setgid, so a
# socket the daemon binds there is group podwrangler-users.
expect_mode podwrangler:podwrangler-users 2750 /run/podwrangler
for f in /usr/lib/systemd/system/podwranglerd.service /usr/lib/systemd/system/podwranglerd.socket \
         /usr/lib/sysusers.d/podwrangler.conf /usr/lib/tmpfiles.d/podwrangler.conf \
         /usr/share/man/man8/podwranglerd.8.gz /usr/share/man/man1/pwctl.1.gz \
         /usr/share/bash-completion/completions/pwctl /usr/share/zsh/vendor-completions/_pwctl \
         /usr/share/fish/vendor_completions.d/pwctl.fish \
         /usr/share/doc/podwrangler/copyright /usr/share/doc/podwrangler/changelog.Debian.gz \
         /usr/share/doc/podwrangler/deployment.md /usr/share/doc/podwrangler/examples/podwranglerd.toml \
         /usr/share/lintian/overrides/podwrangler; do
  expect_mode root:root 644 "$f"
done
# Nothing else in the package may be writable by anyone but root, or owned by anyone else.
check "every file in the .deb is root:root and not group/world-writable" sh -c "
  awk '\$2 != \"root/root\" || substr(\$1, 6, 1) == \"w\" || substr(\$1, 9, 1) == \"w\"' '$work/deb.contents' | grep . && exit 1; true"

check "user podwrangler: system uid, group podwrangler, home /var/lib/podwrangler, no login shell" sh -c '
  IFS=: read -r name _ uid gid _ home shell <<EOF
$(getent passwd podwrangler)
EOF
  [ "$name" = podwrangler ] && [ "$uid" -lt 1000 ] && [ "$(getent group "$gid" | cut -d: -f1)" = podwrangler ] \
    && [ "$home" = /var/lib/podwrangler ] && case "$shell" in */nologin|*/false) true;; *) false;; esac \
    || { getent passwd podwrangler; exit 1; }'
check "group podwrangler: system gid, no members (only the service's primary group)" sh -c '
  IFS=: read -r name _ gid members <<EOF
$(getent group podwrangler)
EOF
  [ "$name" = podwrangler ] && [ "$gid" -lt 1000 ] && [ -z "$members" ] || { getent group podwrangler; exit 1; }'
check "group podwrangler-users: system gid, not the service's group, no members yet" sh -c '
  IFS=: read -r name _ gid members <<EOF
$(getent group podwrangler-users)
EOF
  [ "$name" = podwrangler-users ] && [ "$gid" -lt 1000 ] && [ "$gid" != "$(id -g podwrangler)" ] \
    && [ -z "$members" ] || { getent group podwrangler-users; exit 1; }'
check "user podwrangler is in no group but podwrangler" \
  test "$(id -Gn podwrangler)" = podwrangler
check "api-keys.toml is not shipped (podwranglerd key add creates it)" sh -c \
  "! dpkg -L podwrangler | grep -q api-keys && ! rpm -qpl '$rpmfile' 2>/dev/null | grep -q api-keys"
check "/etc/podwrangler/podwranglerd.toml is a conffile" sh -c \
  "dpkg-query -W -f='\${Conffiles}' podwrangler | grep -q ' /etc/podwrangler/podwranglerd.toml '"
check "podwranglerd.service enabled (multi-user.target.wants)" \
  test -L /etc/systemd/system/multi-user.target.wants/podwranglerd.service
check "podwranglerd.socket enabled (sockets.target.wants)" \
  test -L /etc/systemd/system/sockets.target.wants/podwranglerd.socket
check "man pages render" sh -c "man -l /usr/share/man/man8/podwranglerd.8.gz >/dev/null && man -l /usr/share/man/man1/pwctl.1.gz >/dev/null"
check "bash completion loads" bash -c "source /usr/share/bash-completion/completions/pwctl && complete -p pwctl"

# The installed units, now that ExecStart's binary exists.
verify_out=$(systemd-analyze verify "$UNIT" /usr/lib/systemd/system/podwranglerd.socket 2>&1)
if [ $? = 0 ] && [ -z "$verify_out" ]; then pass "systemd-analyze verify: no output"; else
  fail "systemd-analyze verify"; printf '%s\n' "$verify_out" | sed 's/^/      | /'; fi
score=$(systemd-analyze security --offline=yes "$UNIT" 2>/dev/null \
  | sed -n 's/.*Overall exposure level for podwranglerd.service: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk "BEGIN{exit !($score <= 2.0)}"; then
  pass "systemd-analyze security --offline=yes: $score (<= 2.0)"
else
  fail "systemd-analyze security --offline=yes: '${score:-?}' (want <= 2.0)"
fi
check "the installed config passes --check-config as user podwrangler" \
  setpriv --reuid=podwrangler --regid=podwrangler --init-groups \
  /usr/bin/podwranglerd --config /etc/podwrangler/podwranglerd.toml --check-config
# Every key the packaged config documents (commented out) is one the daemon accepts, with a
# valid value: uncomment them all and check that (the daemon rejects unknown keys).
python3 - /usr/share/doc/podwrangler/examples/podwranglerd.toml >"$work/all-keys.toml" <<'PY'
import re, sys
seen = set()
in_tables = False
for line in open(sys.argv[1]):
    m = re.match(r"^#(\[\[?[a-z_.]+\]\]?|([a-z0-9_]+) = .*)$", line.rstrip("\n"))
    key = m and m.group(2)
    in_tables = in_tables or bool(m and not key)
    # The first value of each top-level key, every table ([[pods]], [[api_keys]],
    # [clusters.NAME]) whole, no key file (absent).
    if m and key != "api_key_file" and (in_tables or key not in seen):
        seen.add(key)
        print(re.sub(r"\s+#.*$", "", m.group(1)))
    elif not m:
        print(line, end="")
PY
check "every key documented in the config is accepted ($(grep -c ' = ' "$work/all-keys.toml") settings uncommented)" \
  /usr/bin/podwranglerd --system --config "$work/all-keys.toml" --check-config

# ---------------------------------------------------------------------------------------------
step "3. the daemon as the unit runs it"
useradd -M -N -r -s /bin/sh -G podwrangler-users "$MEMBER" || die "useradd $MEMBER"
useradd -M -N -r -s /bin/sh "$OUTSIDER" || die "useradd $OUTSIDER"
check "$MEMBER is in podwrangler-users only (not in podwrangler)" sh -c \
  "id -Gn $MEMBER | tr ' ' '\n' | grep -qx podwrangler-users && ! id -Gn $MEMBER | tr ' ' '\n' | grep -qx podwrangler"

# The unit's own ExecStart, User, Group and UMask, so this tests what systemd would run.
unit_value() { sed -n "s/^$1=//p" "$UNIT" | tail -1; }
read -r -a exec_start <<<"$(unit_value ExecStart)"
unit_user=$(unit_value User)
unit_group=$(unit_value Group)
unit_umask=$(unit_value UMask)
info "ExecStart: ${exec_start[*]} (User=$unit_user Group=$unit_group UMask=$unit_umask)"
check "the unit does not use RuntimeDirectory= (it would chown /run/podwrangler to Group=$unit_group)" \
  sh -c "! grep -q '^RuntimeDirectory' '$UNIT'"

# Runs COMMAND... as the unit would: its user and group, no supplementary groups, an empty
# capability bounding set, NoNewPrivileges, its umask and a clean environment. Only ever call it
# in the background (`as_unit ... &`): it execs all the way down, so $! is the daemon's pid.
as_unit() {
  umask "$unit_umask"
  exec setpriv --reuid="$unit_user" --regid="$unit_group" --clear-groups \
    --bounding-set=-all --inh-caps=-all --no-new-privs \
    env -i PATH=/usr/bin:/bin HOME=/var/lib/podwrangler USER="$unit_user" LOGNAME="$unit_user" \
    "$@"
}

# A NOTIFY_SOCKET listener as systemd provides for Type=notify: prints each datagram's lines.
notify_listener() {
  local path=$1 log=$2
  rm -f "$path" "$log"
  python3 -u - "$path" >"$log" 2>&1 <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
print("LISTENING")
s.settimeout(120)
while True:
    try:
        msg = s.recv(4096).decode(errors="replace")
    except socket.timeout:
        break
    for line in msg.splitlines():
        print(line)
EOF
  pids+=($!)
  wait_for 10 grep -q LISTENING "$log"
}

# /run/podwrangler as boot (systemd-tmpfiles-setup) makes it: the service has no
# RuntimeDirectory=, so nothing else does.
runtime_dir() {
  systemd-tmpfiles --create podwrangler.conf >/dev/null 2>&1
  expect_mode podwrangler:podwrangler-users 2750 /run/podwrangler
}

# pwctl as a user: no --socket, so this also tests that it finds the system socket by itself.
pwctl_as() { local u=$1; shift; runuser -u "$u" -- env -u XDG_RUNTIME_DIR /usr/bin/pwctl "$@"; }

# The socket: owner, group and the whole mode string (a socket, rw for owner and group only).
expect_socket() {  # $1: what
  local got
  got=$(stat -c '%U:%G %A' "$SOCK" 2>&1) || { fail "$1: $SOCK: missing"; return; }
  if [ "$got" = "podwrangler:podwrangler-users srw-rw----" ]; then pass "$1: $SOCK $got"
  else fail "$1: $SOCK is $got, want podwrangler:podwrangler-users srw-rw----"; fi
}

# denied USER WHAT COMMAND...: PASS when COMMAND, run as USER, fails with "Permission denied".
denied() {
  local u=$1 what=$2 out
  shift 2
  if out=$(runuser -u "$u" -- "$@" 2>&1); then
    fail "$u could $what"; printf '%s\n' "$out" | sed 's/^/      | /' | head -5
  elif printf '%s' "$out" | grep -qi 'permission denied'; then
    pass "$u cannot $what (permission denied)"
  else
    fail "$u cannot $what, but not for lack of permission"; printf '%s\n' "$out" | sed 's/^/      | /' | head -5
  fi
}

health_checks() {  # $1: what this daemon is
  local out
  if out=$(pwctl_as "$MEMBER" health 2>&1); then
    pass "$1: pwctl health as $MEMBER (group podwrangler-users) answers"
    printf '%s\n' "$out" | sed 's/^/      | /' | head -8
  else
    fail "$1: pwctl health as $MEMBER"; printf '%s\n' "$out" | sed 's/^/      | /' | head -20
  fi
  check "$1: pwctl --socket $SOCK health as $MEMBER answers" \
    runuser -u "$MEMBER" -- /usr/bin/pwctl --socket "$SOCK" health
  # Twice: as installed (/run/podwrangler is closed to others too), then with the directory
  # opened up, so the socket's own mode 0660 is what refuses.
  local dirmode
  dirmode=$(stat -c %a /run/podwrangler)
  for mode in "$dirmode" 755; do
    chmod "$mode" /run/podwrangler
    if out=$(pwctl_as "$OUTSIDER" health 2>&1); then
      fail "$1: pwctl health as $OUTSIDER (not in the group) was answered (/run/podwrangler $mode)"
    elif printf '%s' "$out" | grep -qi 'permission denied'; then
      pass "$1: $OUTSIDER (not in the group) is refused: permission denied (/run/podwrangler $mode)"
    else
      fail "$1: $OUTSIDER failed, but not with 'permission denied'"; printf '%s\n' "$out" | sed 's/^/      | /' | head -10
    fi
  done
  chmod "$dirmode" /run/podwrangler
  check "$1: /run/podwrangler is back to 2750" test "$(stat -c %a /run/podwrangler)" = 2750
  check "$1: root's pwctl health --json says status ok" sh -c \
    "/usr/bin/pwctl --socket $SOCK --json health | python3 -c 'import json,sys; h=json.load(sys.stdin); sys.exit(h[\"status\"] != \"ok\")'"
}

stop_daemon() {  # $1: pid, $2: what
  kill -TERM "$1" 2>/dev/null
  local deadline=$(( $(date +%s) + 45 ))
  while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$1" 2>/dev/null; then
    fail "$2: still running 45 s after SIGTERM"; kill -KILL "$1"; wait "$1" 2>/dev/null
  else
    wait "$1"; local rc=$?
    if [ $rc = 0 ]; then pass "$2: SIGTERM: exited 0"; else fail "$2: SIGTERM: exit status $rc"; fi
  fi
}

DB=/var/lib/podwrangler/podwrangler.db
runtime_dir
notify_listener "$work/notify.sock" "$work/notify.log"
as_unit NOTIFY_SOCKET="$work/notify.sock" "${exec_start[@]}" 2>"$work/daemon1.log" &
daemon=$!
pids+=("$daemon")
if wait_for 60 grep -qx 'READY=1' "$work/notify.log"; then
  pass "daemon sent READY=1 to NOTIFY_SOCKET (Type=notify)"
else
  fail "no READY=1 on NOTIFY_SOCKET within 60 s"; sed 's/^/      | /' "$work/daemon1.log" | tail -20
fi
check "the daemon runs as podwrangler:podwrangler" sh -c \
  "[ \"\$(ps -o user=,group= -p $daemon | tr -s ' ')\" = 'podwrangler podwrangler' ] || ps -o user=,group= -p $daemon"
# The daemon bound the socket itself: group podwrangler-users comes from the setgid directory
# (the daemon is not in that group), mode 0660 from the daemon.
expect_socket "bound by the daemon"
health_checks "bound by the daemon"

# The SQLite database (WAL mode: -wal and -shm exist while the daemon has it open).
for f in "$DB" "$DB-wal" "$DB-shm"; do
  if wait_for 30 test -e "$f"; then expect_mode podwrangler:podwrangler 600 "$f"; else fail "no $f"; fi
done
check "nothing in /var/lib/podwrangler is open to group or others" sh -c \
  "out=\$(find /var/lib/podwrangler -mindepth 1 -perm /077 -printf '%m %p\n'); [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"
# A socket user may use the API, and nothing else of the service.
denied "$MEMBER" "read $DB" cat "$DB"
denied "$MEMBER" "read $DB-wal" cat "$DB-wal"
denied "$MEMBER" "list /var/lib/podwrangler" ls /var/lib/podwrangler
denied "$MEMBER" "read /etc/podwrangler/podwranglerd.toml" cat /etc/podwrangler/podwranglerd.toml
denied "$MEMBER" "list /etc/podwrangler" ls /etc/podwrangler
denied "$MEMBER" "create files beside the socket" touch /run/podwrangler/planted
denied "$OUTSIDER" "read /etc/podwrangler/podwranglerd.toml" cat /etc/podwrangler/podwranglerd.toml
denied "$OUTSIDER" "list /run/podwrangler" ls /run/podwrangler
check "/run/podwrangler holds the socket and nothing else" \
  test "$(ls -A /run/podwrangler)" = podwranglerd.sock

kill -HUP "$daemon"
sleep 1
if kill -0 "$daemon" 2>/dev/null && pwctl_as "$MEMBER" health >/dev/null 2>&1; then
  pass "SIGHUP (ExecReload): still running and answering"
else
  fail "SIGHUP (ExecReload) killed the daemon or it stopped answering"; tail -20 "$work/daemon1.log" | sed 's/^/      | /'
fi
stop_daemon "$daemon" "bound by the daemon"
grep -Eiq 'panick|error' "$work/daemon1.log" && { info "daemon log (errors):"; grep -Ei 'panick|error' "$work/daemon1.log" | head -10 | sed 's/^/      | /'; }

# ---------------------------------------------------------------------------------------------
step "4. API keys over TCP"
KEYS=/etc/podwrangler/api-keys.toml
# METHOD PATH [BODY]: one request to the TCP listener with $PWCI_KEY as bearer key (if set).
# Prints the status, the Content-Type, then the body.
tcp_request() {
  python3 - "$tcp" "$@" <<'EOF'
import os, sys, urllib.error, urllib.request
addr, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request("http://%s%s" % (addr, path), data=body, method=method)
if os.environ.get("PWCI_KEY"):
    req.add_header("Authorization", "Bearer " + os.environ["PWCI_KEY"])
if body is not None:
    req.add_header("Content-Type", "application/json")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    r = opener.open(req, timeout=20)
    status, headers, data = r.status, r.headers, r.read()
except urllib.error.HTTPError as e:
    status, headers, data = e.code, e.headers, e.read()
print(status)
print(headers.get("Content-Type", ""))
sys.stdout.write(data.decode(errors="replace"))
EOF
}
# wait_status SECONDS STATUS METHOD PATH: poll until a request gets STATUS (reloads are
# asynchronous).
wait_status() {
  local deadline=$(( $(date +%s) + $1 )) want=$2
  shift 2
  until [ "$(tcp_request "$@" 2>/dev/null | head -1)" = "$want" ]; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.3
  done
}
# expect_http WHAT STATUS [CODE] -- METHOD PATH [BODY]: the status and, for errors, a
# problem+json body with that `code`.
expect_http() {
  local what=$1 want=$2 code= out
  shift 2
  if [ "$1" != -- ]; then code=$1; shift; fi
  shift
  out=$(tcp_request "$@" 2>&1)
  if [ "$(printf '%s\n' "$out" | sed -n 1p)" != "$want" ]; then
    fail "$what: want HTTP $want"; printf '%s\n' "$out" | sed 's/^/      | /' | head -8; return
  fi
  if [ -n "$code" ] && ! printf '%s\n' "$out" | python3 -c '
import json, sys
lines = sys.stdin.read().split("\n", 2)
sys.exit(not (lines[1].startswith("application/problem+json") and json.loads(lines[2])["code"] == sys.argv[1]))' "$code"; then
    fail "$what: HTTP $want but not problem+json with code $code"; printf '%s\n' "$out" | sed 's/^/      | /' | head -8; return
  fi
  pass "$what: HTTP $want${code:+ ($code)}"
}

if ! /usr/bin/podwranglerd key --help >/dev/null 2>&1; then
  echo "SKIP: key management not in this build"
else
  rm -f "$KEYS"
  runtime_dir
  # TCP never starts without a key: the unit's daemon refuses --listen while it has none.
  check "the daemon refuses TCP without an API key" sh -c \
    '"$@" --listen 127.0.0.1:0 --check-config 2>&1 | grep -q "without an API key"' _ "${exec_start[@]}"
  # As root, in system mode, with root's usual umask: the file's mode is the command's doing.
  keyout=$( umask 022; /usr/bin/podwranglerd key add ci-reader --scope read 2>"$work/key-add.err" )
  rc=$?
  key=$(printf '%s\n' "$keyout" | tail -1)
  if [ $rc = 0 ] && [ -n "$key" ] && ! printf '%s' "$key" | grep -q '[[:space:]]'; then
    pass "podwranglerd key add ci-reader --scope read: exit 0, a key on stdout's last line"
  else
    fail "podwranglerd key add ci-reader --scope read: exit $rc, last stdout line '${key:-}'"
    sed 's/^/      | /' "$work/key-add.err" | head -10
    key=
  fi
  # The unit's daemon with a TCP listener on a free loopback port; the ready file says which.
  install -d -o podwrangler -g podwrangler -m 0700 "$work/ready"
  notify_listener "$work/notify-keys.sock" "$work/notify-keys.log"
  as_unit NOTIFY_SOCKET="$work/notify-keys.sock" "${exec_start[@]}" \
    --listen 127.0.0.1:0 --ready-file "$work/ready/ready.json" 2>"$work/daemon-keys.log" &
  daemon=$!
  pids+=("$daemon")
  tcp=
  if wait_for 60 grep -qx 'READY=1' "$work/notify-keys.log" && wait_for 10 test -s "$work/ready/ready.json"; then
    tcp=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tcp"] or "")' "$work/ready/ready.json")
  fi
  if [ -z "$tcp" ]; then
    fail "daemon with --listen 127.0.0.1:0 and a key: not ready or no TCP address"; tail -20 "$work/daemon-keys.log" | sed 's/^/      | /'
  else
    pass "daemon ready with TCP on $tcp"
    expect_mode root:podwrangler 640 "$KEYS"
    check "api-keys.toml names ci-reader and does not hold the key itself (it keeps a hash)" sh -c \
      'grep -q ci-reader "$1" && { [ -z "$2" ] || ! grep -qF -- "$2" "$1"; }' _ "$KEYS" "$key"
    denied "$MEMBER" "read $KEYS" cat "$KEYS"
    denied "$OUTSIDER" "read $KEYS" cat "$KEYS"
    check "the service user can read $KEYS (through group podwrangler)" \
      setpriv --reuid=podwrangler --regid=podwrangler --init-groups cat "$KEYS"

    PWCI_KEY=$key wait_status 15 200 GET /api/v1/pods/
    PWCI_KEY=$key expect_http "GET /api/v1/pods/ with the read key" 200 -- GET /api/v1/pods/
    PWCI_KEY=$key expect_http "POST /api/v1/pods/ with the read key" 403 forbidden -- POST /api/v1/pods/ \
      '{"alias":"ci-forbidden","provider":"plaintty","url":"wss://127.0.0.1:9/exec/web-5d8f7/?cols=220&pod=web-5d8f7-00000","token":"ci-not-a-token"}'
    check "the refused POST registered nothing" sh -c \
      "! runuser -u $MEMBER -- /usr/bin/pwctl --socket $SOCK pod list -q | grep -qx ci-forbidden"
    PWCI_KEY= expect_http "GET /api/v1/pods/ without a key" 401 unauthorized -- GET /api/v1/pods/
    PWCI_KEY=not-the-key expect_http "GET /api/v1/pods/ with a wrong key" 401 unauthorized -- GET /api/v1/pods/

    # Revoke ci-reader while another key remains, so the answer does not hang on what the daemon
    # does with no keys at all.
    other=$( umask 022; /usr/bin/podwranglerd key add ci-other --scope read 2>>"$work/key-add.err" | tail -1 )
    if /usr/bin/podwranglerd key revoke ci-reader >"$work/key-revoke.log" 2>&1; then
      pass "podwranglerd key revoke ci-reader"
    else
      fail "podwranglerd key revoke ci-reader"; sed 's/^/      | /' "$work/key-revoke.log" | head
    fi
    expect_mode root:podwrangler 640 "$KEYS"
    check "api-keys.toml no longer names ci-reader, still names ci-other" sh -c \
      '! grep -q ci-reader "$1" && grep -q ci-other "$1"' _ "$KEYS"
    kill -HUP "$daemon"
    PWCI_KEY=$key wait_status 15 401 GET /api/v1/pods/
    PWCI_KEY=$key expect_http "after revoke and SIGHUP, GET /api/v1/pods/ with the revoked key" 401 unauthorized -- GET /api/v1/pods/
    PWCI_KEY=$other expect_http "after revoke and SIGHUP, GET /api/v1/pods/ with the other key" 200 -- GET /api/v1/pods/
    if [ -n "$key" ]; then
      check "the key is in no log or error output" sh -c '! grep -qF -- "$1" "$2" "$3" "$4"' _ \
        "$key" "$work/daemon-keys.log" "$work/key-add.err" "$work/key-revoke.log"
    fi
  fi
  stop_daemon "$daemon" "daemon with TCP and API keys"
  # api-keys.toml stays: the purge below must remove it with /etc/podwrangler.
fi

# ---------------------------------------------------------------------------------------------
step "5. socket activation"
rm -f "$SOCK"
runtime_dir
notify_listener "$work/notify2.sock" "$work/notify2.log"
# The clean environment goes around systemd-socket-activate, which passes on only the -E
# variables and adds LISTEN_FDS/LISTEN_PID.
( umask "$unit_umask"
  exec env -i PATH=/usr/bin:/bin HOME=/var/lib/podwrangler USER="$unit_user" LOGNAME="$unit_user" \
    NOTIFY_SOCKET="$work/notify2.sock" \
    systemd-socket-activate -l "$SOCK" -E PATH -E HOME -E USER -E LOGNAME -E NOTIFY_SOCKET \
    setpriv --reuid="$unit_user" --regid="$unit_group" --clear-groups --bounding-set=-all --inh-caps=-all --no-new-privs \
    "${exec_start[@]}"
) >"$work/daemon2.log" 2>&1 &
activator=$!
pids+=("$activator")
if wait_for 20 test -S "$SOCK"; then
  # What podwranglerd.socket's SocketUser=, SocketGroup= and SocketMode= do.
  socket_value() { sed -n "s/^$1=//p" /usr/lib/systemd/system/podwranglerd.socket; }
  chown "$(socket_value SocketUser):$(socket_value SocketGroup)" "$SOCK"
  chmod "$(socket_value SocketMode)" "$SOCK"
  expect_socket "socket unit's socket"
  inode=$(stat -c %i "$SOCK")
  # The first connection starts the daemon; pwctl waits in the listen backlog meanwhile.
  health_checks "socket-activated"
  if grep -qx 'READY=1' "$work/notify2.log"; then pass "socket-activated: READY=1"; else fail "socket-activated: no READY=1"; fi
  check "socket-activated: the daemon serves systemd's socket (same inode, not re-bound)" \
    test "$(stat -c %i "$SOCK")" = "$inode"
  expect_socket "socket-activated, after serving"
  check "socket-activated: the daemon is the activator's pid, running as podwrangler" sh -c \
    "[ \"\$(ps -o user=,comm= -p $activator | tr -s ' ')\" = 'podwrangler podwranglerd' ] || ps -o user=,comm= -p $activator"
  stop_daemon "$activator" "socket-activated"
else
  fail "systemd-socket-activate did not create $SOCK"; sed 's/^/      | /' "$work/daemon2.log" | tail
fi
rm -f "$SOCK"

# ---------------------------------------------------------------------------------------------
step "6. end to end with PostgreSQL"
if [ -z "${PODWRANGLER_TEST_DATABASE_URL:-}" ]; then
  source scripts/pg.sh
  pg_start >/dev/null && pg_started=1 || die "no PostgreSQL: set PODWRANGLER_TEST_DATABASE_URL"
fi
pgdb=podwrangler_pkgci_$$
if psql -q "$PODWRANGLER_TEST_DATABASE_URL" -c "CREATE DATABASE $pgdb" >/dev/null; then
  pgurl=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
    "$PODWRANGLER_TEST_DATABASE_URL" "$pgdb")
  pass "created PostgreSQL database $pgdb"
else
  pgdb=
  die "cannot create a database in PODWRANGLER_TEST_DATABASE_URL"
fi

podsim=${PODWRANGLER_PODSIM:-}
if [ -z "$podsim" ]; then
  for p in "$target/release/podsim" "$target/debug/podsim"; do [ -x "$p" ] && { podsim=$p; break; }; done
fi
if [ -z "$podsim" ]; then
  cargo build -q -p podsim >&2 || die "cargo build -p podsim"
  podsim=$target/debug/podsim
fi
mkdir -m 0755 "$work/pods"
"$podsim" --listen 127.0.0.1:0 --pods 3 --token pkgci-token --plain-http --workdir "$work/pods" >"$work/podsim.json" 2>"$work/podsim.log" &
pids+=($!)
wait_for 30 python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$work/podsim.json" || die "podsim printed nothing: $(tail -5 "$work/podsim.log")"
pass "podsim with 3 pods at $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_base"])' "$work/podsim.json")"

runtime_dir
notify_listener "$work/notify3.sock" "$work/notify3.log"
# As a drop-in's Environment= would set it (see docs/deployment.md).
as_unit NOTIFY_SOCKET="$work/notify3.sock" PODWRANGLER_DATABASE_URL="$pgurl" "${exec_start[@]}" 2>"$work/daemon3.log" &
daemon=$!
pids+=("$daemon")
wait_for 60 grep -qx 'READY=1' "$work/notify3.log" || { tail -20 "$work/daemon3.log" | sed 's/^/      | /'; die "PostgreSQL daemon: no READY=1"; }
pass "daemon with PostgreSQL is ready"

pw() { pwctl_as "$MEMBER" "$@"; }
pyjson() { python3 -c "import json, sys; d = json.load(sys.stdin); $1"; }
check "health: database backend postgres, ok" sh -c \
  "runuser -u $MEMBER -- /usr/bin/pwctl --json health | python3 -c 'import json,sys; h=json.load(sys.stdin); sys.exit(not (h[\"database\"][\"backend\"]==\"postgres\" and h[\"database\"][\"ok\"]))'"

# PlainTTY pods by URL, one by one.
mapfile -t urls < <(pyjson 'print("\n".join(p["plaintty_url"] for p in d["pods"]))' <"$work/podsim.json")
added=0
for i in "${!urls[@]}"; do
  if out=$(pw pod add --alias "tty-$i" --url "${urls[$i]}" --tag smoke 2>&1); then
    added=$((added + 1))
  else
    printf '%s\n' "$out" | sed 's/^/      | /' | head -5
  fi
done
if [ "$added" = "${#urls[@]}" ]; then pass "registered ${added} PlainTTY pods"; else fail "registered only $added of ${#urls[@]} PlainTTY pods"; fi

# The same pods again through the Kubernetes API (list + exec).
http_base=$(pyjson 'print(d["http_base"])' <"$work/podsim.json")
printf 'pkgci-token' >"$work/k8s-token"
chmod 0644 "$work/k8s-token"
if out=$(pw pod import --server "$http_base" --token-file "$work/k8s-token" -n default -l app=web --prefix k8s- --tag smoke-k8s 2>&1); then
  pass "imported pods through the Kubernetes API"
else
  fail "pwctl pod import"; printf '%s\n' "$out" | sed 's/^/      | /' | head -10
fi
check "pod list shows 6 pods" sh -c \
  "[ \"\$(runuser -u $MEMBER -- /usr/bin/pwctl pod list -q | wc -l)\" = 6 ] || runuser -u $MEMBER -- /usr/bin/pwctl pod list"

fanout() {  # $1 tag
  local out
  out=$(pw --json exec run-many --tag "$1" 'echo "pod=$POD_NAME"; test -n "$HOSTNAME"' 2>&1)
  if printf '%s' "$out" | pyjson '
ok = d["succeeded"] == 3 and d["failed"] == 0 and len(d["results"]) == 3
for r in d["results"]:
    ok = ok and r["status"] == "succeeded" and r["exit_code"] == 0 and r["stdout"].strip().startswith("pod=web-5d8f7-")
names = {r["stdout"].strip() for r in d["results"]}
sys.exit(0 if ok and len(names) == 3 else 1)' 2>/dev/null; then
    pass "fan-out over tag $1: 3 pods succeeded, each printed its own POD_NAME"
  else
    fail "fan-out over tag $1"; printf '%s\n' "$out" | sed 's/^/      | /' | head -20
  fi
}
fanout smoke
fanout smoke-k8s

# State carries over between commands in one pod's long-lived shell.
pw exec run tty-0 'cd /tmp && export PKGCI=carried' >/dev/null 2>&1
check "one pod's shell keeps cd and exports between commands" sh -c \
  "[ \"\$(runuser -u $MEMBER -- /usr/bin/pwctl exec run tty-0 'echo \$(pwd) \$PKGCI')\" = '/tmp carried' ]"
# A subshell: `exit 3` itself would end the pod's long-lived shell.
code=0; out=$(pw exec run k8s-web-5d8f7-00001 '(exit 3)' 2>&1) || code=$?
if [ "$code" = 3 ]; then pass "pwctl exec run exits with the remote exit code (3)"; else
  fail "pwctl exec run '(exit 3)' exited $code"; printf '%s\n' "$out" | sed 's/^/      | /' | head; fi

check "history lists the fan-out commands" sh -c "
  runuser -u $MEMBER -- /usr/bin/pwctl --json exec history --limit 50 | python3 -c '
import json, sys
d = json.load(sys.stdin)
items = d[\"items\"] if isinstance(d, dict) else d
fan = [i for i in items if i[\"command\"].startswith(\"echo \\\"pod=\")]
sys.exit(0 if len(fan) == 6 and all(i[\"status\"] == \"succeeded\" for i in fan) else 1)'"
rows=$(psql -tA "$pgurl" -c "SELECT count(*) FROM commands WHERE status <> 'running'" 2>&1)
if [ "$rows" -ge 9 ] 2>/dev/null; then pass "PostgreSQL holds the history ($rows finished commands)"; else fail "PostgreSQL commands table: '$rows'"; fi
check "no pod token in the history or the daemon's log" sh -c \
  "! psql -tA '$pgurl' -c 'SELECT command, stdout, stderr, error FROM commands' | grep -q pkgci-token && ! grep -q pkgci-token '$work/daemon3.log'"
stop_daemon "$daemon" "PostgreSQL daemon"
check "after a clean stop no command is left running" sh -c \
  "[ \"\$(psql -tA '$pgurl' -c \"SELECT count(*) FROM commands WHERE status = 'running'\")\" = 0 ]"

# ---------------------------------------------------------------------------------------------
step "7. upgrade over the old layout (group podwrangler used the socket)"
# What an older package left: state 0750 with 0640 database files, /etc/podwrangler 0755, the
# runtime directory 0750 podwrangler:podwrangler with a socket of group podwrangler, and a person
# in group podwrangler. Plus a trap: a link in the state directory to a root-owned file, which the
# upgrade must not chmod.
chmod 0750 /var/lib/podwrangler
: >"$work/victim"; chmod 0644 "$work/victim"
for f in "$DB" "$DB-wal"; do
  [ -e "$f" ] || install -o podwrangler -g podwrangler /dev/null "$f"
  chmod 0640 "$f"
done
ln -sf "$work/victim" "$DB-shm"
chown root:root /etc/podwrangler; chmod 0755 /etc/podwrangler
chown podwrangler:podwrangler /run/podwrangler; chmod 0750 /run/podwrangler
rm -f "$SOCK"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SOCK"
chown podwrangler:podwrangler "$SOCK"; chmod 0660 "$SOCK"
usermod -aG podwrangler "$OUTSIDER"
if dpkg -i "$deb" >"$work/dpkg-upgrade.log" 2>&1; then pass "dpkg -i again (upgrade)"; else
  fail "dpkg -i again (upgrade)"; sed 's/^/      | /' "$work/dpkg-upgrade.log"; fi
expect_mode podwrangler:podwrangler 700 /var/lib/podwrangler
expect_mode podwrangler:podwrangler 600 "$DB"
expect_mode podwrangler:podwrangler 600 "$DB-wal"
expect_mode root:root 644 "$work/victim"
expect_mode root:podwrangler 750 /etc/podwrangler
expect_mode root:podwrangler 640 /etc/podwrangler/podwranglerd.toml
expect_mode podwrangler:podwrangler-users 2750 /run/podwrangler
check "the old socket is group podwrangler-users now" test "$(stat -c %G "$SOCK")" = podwrangler-users
check "the upgrade names $OUTSIDER, a member of group podwrangler, and how to move it" sh -c \
  "grep -q 'group podwrangler has members ($OUTSIDER)' '$work/dpkg-upgrade.log' && grep -q 'usermod -aG podwrangler-users' '$work/dpkg-upgrade.log'"
gpasswd -d "$OUTSIDER" podwrangler >/dev/null
rm -f "$SOCK" "$DB-shm"

# ---------------------------------------------------------------------------------------------
step "8. dpkg --purge"
userdel "$MEMBER"; userdel "$OUTSIDER"
if dpkg --purge podwrangler >"$work/purge.log" 2>&1; then pass "dpkg --purge podwrangler"; else
  fail "dpkg --purge podwrangler"; sed 's/^/      | /' "$work/purge.log"; fi
snapshot >"$work/after.list"
if diff "$work/before.list" "$work/after.list" >"$work/purge.diff"; then
  pass "purge left nothing behind in /etc /usr /var/lib /opt /srv (file lists equal)"
else
  fail "purge changed the file system:"; sed 's/^/      | /' "$work/purge.diff" | head -30
fi
check "/run/podwrangler is gone" test ! -e /run/podwrangler
if getent passwd podwrangler >/dev/null; then info "user podwrangler stays after purge (Debian policy for system users)"; fi
for g in podwrangler podwrangler-users; do
  if getent group "$g" >/dev/null; then info "group $g stays after purge"; fi
done

# ---------------------------------------------------------------------------------------------
step "9. the .rpm in a scratch root"
rpmroot=$work/rpmroot
mkdir -p "$rpmroot"
rpm --root "$rpmroot" --dbpath /var/lib/rpm --initdb || fail "rpm --initdb"
# --noscripts: the scratch root has no shell to run scriptlets in; this checks the payload.
if rpm --root "$rpmroot" --dbpath /var/lib/rpm -ivh --nodeps --noscripts "$rpmfile" >"$work/rpm-i.log" 2>&1; then
  pass "rpm --root DIR -ivh --nodeps $(basename "$rpmfile")"
else
  fail "rpm -ivh into the scratch root"; sed 's/^/      | /' "$work/rpm-i.log"
fi
check "rpm -V: every file installed as packaged" rpm --root "$rpmroot" --dbpath /var/lib/rpm -V --nodeps --nouser --nogroup podwrangler
# Files (not directories) with their modes as installed from each package, with the
# distribution-specific paths mapped: Debian keeps the licence as doc/copyright, zsh completions
# in vendor-completions and has a changelog and lintian overrides; RPM keeps the licence in
# /usr/share/licenses and zsh completions in site-functions.
(cd "$rpmroot" && find . -type f ! -path './var/lib/rpm*' ! -path './usr/lib/sysimage/rpm*' -printf '%m /%P\n' | sort -k2) \
  | sed -e 's#^\([0-9]*\) /usr/share/zsh/site-functions/#\1 /usr/share/zsh/vendor-completions/#' \
        -e '\#^[0-9]* /usr/share/licenses/podwrangler/LICENSE$#d' >"$work/rpm.files"
sed -e '\#^[0-9]* /usr/share/doc/podwrangler/copyright$#d' \
    -e '\#^[0-9]* /usr/share/doc/podwrangler/changelog.Debian.gz$#d' \
    -e '\#^[0-9]* /usr/share/lintian/overrides/podwrangler$#d' "$work/deb.installed" >"$work/deb.files"
if diff "$work/deb.files" "$work/rpm.files" >"$work/files.diff"; then
  pass "the .rpm's files and modes match the .deb's ($(wc -l <"$work/rpm.files") files)"
else
  fail "the .rpm's files differ from the .deb's (< deb, > rpm):"; sed 's/^/      | /' "$work/files.diff"
fi
check "rpm: the config is a noreplace config file, group podwrangler" sh -c \
  "rpm -qp --queryformat '[%{FILEFLAGS:fflags} %{FILEGROUPNAME} %{FILENAMES}\n]' '$rpmfile' 2>/dev/null | grep -qx 'cn podwrangler /etc/podwrangler/podwranglerd.toml'"
check "rpm: scriptlets are shell scripts that pass sh -n" sh -c "
  rpm -qp --scripts '$rpmfile' 2>/dev/null >'$work/scriptlets.txt' &&
  for s in preinstall postinstall preuninstall postuninstall; do grep -q \"^\$s scriptlet\" '$work/scriptlets.txt' || { echo \"no \$s\"; exit 1; }; done &&
  for f in packaging/rpm/*.sh packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm; do sh -n \"\$f\" || exit 1; done"
# The scriptlets repeat what sysusers.d and tmpfiles.d say, for systems without those tools:
# they must say the same.
check "rpm %pre's sysusers lines are those of podwrangler.sysusers; its fallback creates both groups" bash -c "
  diff <(grep -Ev '^(#|\$)' systemd/podwrangler.sysusers) \
       <(sed -n '/^preinstall scriptlet/,/^postinstall scriptlet/p' '$work/scriptlets.txt' | sed -n '/<<.SYSUSERS/,/^SYSUSERS/p' | sed '1d;\$d') &&
  grep -q 'groupadd -r podwrangler\$' '$work/scriptlets.txt' && grep -q 'groupadd -r podwrangler-users\$' '$work/scriptlets.txt'"
check "postinst and rpm %post make each tmpfiles.d directory with its owner and mode" bash -c "
  sed -n '/^postinstall scriptlet/,/^preuninstall scriptlet/p' '$work/scriptlets.txt' >'$work/rpm-post.sh'
  grep '^d ' systemd/podwrangler.tmpfiles | while read -r _ path mode user group _; do
    for f in packaging/debian/postinst '$work/rpm-post.sh'; do
      grep -q -- \"install -d -o \$user -g \$group -m \$mode \$path\\\$\" \"\$f\" || { echo \"\$f: no install -d -o \$user -g \$group -m \$mode \$path\"; exit 1; }
    done
  done"

# ---------------------------------------------------------------------------------------------
elapsed=$(( $(date +%s) - started ))
echo
if [ "$failures" = 0 ]; then
  echo "ci-packages.sh: all package checks passed in ${elapsed}s"
else
  echo "ci-packages.sh: ${failures} check(s) FAILED (${elapsed}s)"
  exit 1
fi
