#!/bin/sh
# udhcpc event script of a lab camera: configure wlan0 from the lease and record the lease
# (address, router, option 42 ntpsrv) as JSON in $LAB_LEASE_FILE for the tests.
set -u
# Every event (deconfig, bound, renew, nak, leasefail) is also appended to $LAB_EVENTS_FILE.
if [ -n "${LAB_EVENTS_FILE:-}" ]; then
    printf '{"event": "%s", "ip": "%s", "lease": %s, "time": %s}\n' \
        "$1" "${ip:-}" "${lease:-0}" "$(date +%s.%N)" >> "$LAB_EVENTS_FILE"
fi
case "$1" in
deconfig)
    # Keep the previous address until a new lease replaces it: the emulator stays reachable
    # while the agent renews.
    ip link set "$interface" up
    ;;
bound|renew)
    current=$(ip -4 -o addr show dev "$interface" | awk '{print $4}')
    if [ "$current" != "$ip/${mask:-24}" ]; then
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
    fi
    gateway=""
    for r in ${router:-}; do gateway="$r"; break; done
    if [ -n "$gateway" ]; then
        ip route replace default via "$gateway" dev "$interface"
    fi
    ntp=""
    for s in ${ntpsrv:-}; do ntp="$ntp${ntp:+, }\"$s\""; done
    tmp="$LAB_LEASE_FILE.tmp"
    printf '{"event": "%s", "ip": "%s", "mask": %s, "router": "%s", "ntpsrv": [%s], "serverid": "%s", "lease": %s, "time": %s}\n' \
        "$1" "$ip" "${mask:-24}" "$gateway" "$ntp" "${serverid:-}" "${lease:-0}" "$(date +%s)" > "$tmp"
    mv "$tmp" "$LAB_LEASE_FILE"
    ;;
esac
exit 0
