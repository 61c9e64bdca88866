# %preun: on erase ($1 = 0) stop and disable the units. Upgrades ($1 >= 1) keep them running;
# %postun restarts the daemon on the new binary.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now podwranglerd.service podwranglerd.socket >/dev/null 2>&1 || :
    else
        systemctl --no-reload disable podwranglerd.service podwranglerd.socket >/dev/null 2>&1 || :
    fi
fi
exit 0
