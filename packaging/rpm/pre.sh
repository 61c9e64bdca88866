# %pre: create the service user and group podwrangler and the socket users' group
# podwrangler-users before the files land, so the config file can be installed as
# root:podwrangler. Same entries as /usr/lib/sysusers.d/podwrangler.conf.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers --replace=/usr/lib/sysusers.d/podwrangler.conf - <<'SYSUSERS' || :
u podwrangler       - "PodWrangler daemon" /var/lib/podwrangler /usr/sbin/nologin
g podwrangler-users -
SYSUSERS
fi
if ! getent group podwrangler >/dev/null; then
    groupadd -r podwrangler
fi
if ! getent passwd podwrangler >/dev/null; then
    useradd -r -g podwrangler -d /var/lib/podwrangler -M -s /sbin/nologin \
        -c "PodWrangler daemon" podwrangler
fi
if ! getent group podwrangler-users >/dev/null; then
    groupadd -r podwrangler-users
fi
exit 0
