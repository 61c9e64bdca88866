# %post: create /run/podwrangler and /var/lib/podwrangler, enable the socket and service on
# first install and start them when systemd runs. $1 is 1 on install, 2+ on upgrade.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create podwrangler.conf >/dev/null 2>&1 || :
fi
[ -d /var/lib/podwrangler ] || install -d -o podwrangler -g podwrangler -m 0750 /var/lib/podwrangler
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload enable podwranglerd.socket podwranglerd.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
        systemctl start podwranglerd.socket podwranglerd.service >/dev/null 2>&1 || :
    fi
fi
exit 0
