# %post: create /run/podwrangler (2750 podwrangler:podwrangler-users) and /var/lib/podwrangler
# (0700 podwrangler:podwrangler), give /etc/podwrangler to group podwrangler (0750), enable the
# socket and service on first install and start them when systemd runs. $1 is 1 on install, 2+
# on upgrade.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create podwrangler.conf >/dev/null 2>&1 || :
fi
# The same by hand where systemd-tmpfiles is missing; on upgrade this also tightens a state
# directory an older package made 0750.
install -d -o podwrangler -g podwrangler -m 0700 /var/lib/podwrangler
[ -d /run/podwrangler ] || install -d -o podwrangler -g podwrangler-users -m 2750 /run/podwrangler
# The config file is root:podwrangler 0640 in the payload; api-keys.toml (written by
# `podwranglerd key add`) likewise. Socket users may read neither.
install -d -o root -g podwrangler -m 0750 /etc/podwrangler
if [ "$1" -ge 2 ]; then
    # Upgrade from a package that gave socket access to group podwrangler: the socket it made is
    # group podwrangler (-h: the entry itself, never a link's target), and the daemon's database
    # files were 0640 (UMask=0027); tighten them as the service user, who owns them.
    if [ -S /run/podwrangler/podwranglerd.sock ] &&
        [ "$(stat -c %G /run/podwrangler/podwranglerd.sock)" = podwrangler ]; then
        chgrp -h podwrangler-users /run/podwrangler/podwranglerd.sock || :
    fi
    for f in podwrangler.db podwrangler.db-wal podwrangler.db-shm; do
        if [ -f "/var/lib/podwrangler/$f" ]; then
            (cd / && runuser -u podwrangler -- chmod go-rwx "/var/lib/podwrangler/$f") || :
        fi
    done
    members=$(getent group podwrangler | cut -d: -f4)
    if [ -n "$members" ]; then
        echo "podwrangler: group podwrangler has members ($members). Socket access now needs group" >&2
        echo "podwrangler: podwrangler-users; group podwrangler can read /etc/podwrangler (config, API" >&2
        echo "podwrangler: keys). Move them: usermod -aG podwrangler-users USER && gpasswd -d USER podwrangler" >&2
    fi
fi
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload enable podwranglerd.socket podwranglerd.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
        systemctl start podwranglerd.socket podwranglerd.service >/dev/null 2>&1 || :
    fi
fi
exit 0
