# %postun: reload systemd; on upgrade ($1 >= 1) restart a running daemon on the new binary.
# The database in /var/lib/podwrangler, /etc/podwrangler/api-keys.toml, the podwrangler user and
# the groups podwrangler and podwrangler-users are kept on erase (RPM has no purge); a changed
# config is kept as podwranglerd.toml.rpmsave.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart podwranglerd.service >/dev/null 2>&1 || :
    fi
fi
exit 0
