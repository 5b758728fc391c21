"""What `doctor` runs on a Pi: one shell script that prints every fact the checks need.

Each section is one command's output and exit code (see appliance.doctor_ssh). The
script only reads: it never restarts, writes or reloads anything on the Pi (the hostapd
parse runs on a copy of the config bound to an interface that does not exist, so the
running access point is never touched). Every command that could hang is under `timeout`.
"""

from __future__ import annotations

from typing import Any

from appliance.doctor_ssh import PROLOGUE, RemoteResult, run_script

# $1 TLS dir, $2 cache dir, $3 log dir, $4 lease file, $5 hostapd config, $6 nginx config,
# $7 chrony config, $8 WireGuard interface, $9 the firewall role's ruleset file, $10 the
# recordings program, $11 its settings, $12 the recordings' storage path ("" without recordings),
# $13 the snapshot tool, $14 its spec.
SCRIPT = (
    PROLOGUE
    + r"""
tls=$1 cache=$2 logs=$3 leases=$4 hostapd_conf=$5 nginx_conf=$6 chrony_conf=$7 wg=$8 fw_conf=$9
rec_helper=${10} rec_conf=${11} rec_path=${12} snapshot=${13} snapshot_spec=${14}

sec services
for s in hostapd dnsmasq chrony nginx presence-firewall ulogd2 "wg-quick@$wg" vsftpd; do
  printf '%s %s\n' "$s" "$(systemctl is-active "$s.service" 2>/dev/null)"
done
end 0

sec config:nginx; timeout 20 nginx -t -q -c "$nginx_conf" 2>&1; end $?
sec config:dnsmasq
timeout 20 dnsmasq --test -7 /etc/dnsmasq.d,.dpkg-dist,.dpkg-old,.dpkg-new 2>&1; end $?
sec config:chrony; timeout 20 chronyd -p -f "$chrony_conf" 2>&1 >/dev/null; end $?
sec config:hostapd
if [ -r "$hostapd_conf" ]; then
  copy=$(mktemp) && chmod 600 "$copy" &&
  sed 's/^interface=.*/interface=pa-doctor0/; /^bridge=/d; /^ctrl_interface=/d' \
    "$hostapd_conf" > "$copy" && timeout 10 hostapd "$copy" 2>&1
  rc=$?; rm -f "$copy"; end $rc
else
  echo "no $hostapd_conf"; end 2
fi

sec journal:hostapd
journalctl -u hostapd.service -b --no-pager -o cat -n 400 2>&1; end $?

sec leases; cat "$leases" 2>&1; end $?
sec tracking; timeout 10 chronyc -n tracking 2>&1; end $?
sec clients; timeout 10 chronyc -n -c clients 2>&1; end $?

sec cert:enddate; timeout 10 openssl x509 -in "$tls/server.crt" -noout -enddate 2>&1; end $?
sec cert:pem; cat "$tls/server.crt" 2>&1; end $?
sec now; date +%s; end $?

sec df; df -P -k / "$cache" "$logs" 2>&1; end $?
sec dfi; df -P -i / "$cache" "$logs" 2>&1; end $?

sec config:firewall
if [ -r "$fw_conf" ]; then timeout 10 nft -c -f "$fw_conf" 2>&1; end $?; else echo "no $fw_conf"; end 3; fi
sec firewall; timeout 10 nft -j list table inet presence_appliance 2>&1; end $?

sec install:pending
# The services an unfinished install left running on their old files (read only).
if [ -x "$snapshot" ] && [ -r "$snapshot_spec" ]; then
  timeout 20 "$snapshot" --spec "$snapshot_spec" pending 2>&1; end $?
else
  echo "no $snapshot_spec"; end 3
fi

sec wireguard:port; timeout 10 wg show "$wg" listen-port 2>&1; end $?
sec wireguard:peers
# The dump's first line is the interface's own and holds the Pi's private key: it never
# leaves the Pi (only the peer lines do, or wg's complaint when it fails).
out=$(timeout 10 wg show "$wg" dump 2>&1); rc=$?
if [ $rc = 0 ]; then printf '%s\n' "$out" | sed 1d; else printf '%s\n' "$out"; fi; end $rc

if [ -n "$rec_path" ]; then
  # What each camera did on the FTP server in the last 24 h (the recordings program reads
  # vsftpd's log; the same answer as `presence-appliance recordings activity`).
  sec ftp:activity
  if [ -x "$rec_helper" ]; then
    timeout 20 "$rec_helper" --config "$rec_conf" activity --json --hours 24 2>&1; end $?
  else
    echo "no $rec_helper"; end 3
  fi
  sec recordings:storage
  if [ -d "$rec_path" ]; then
    if mountpoint -q "$rec_path"; then echo mounted; else echo not-mounted; fi
    df -P -k "$rec_path" 2>&1; end $?
  else
    echo "no $rec_path"; end 3
  fi
fi
"""
)


def probe_args(variables: dict[str, Any]) -> list[str]:
    """Where the roles put things on this Pi (their defaults, or the inventory's overrides)."""

    def var(name: str, default: str) -> str:
        value = variables.get(name)
        return str(value) if isinstance(value, str) and value.strip() else default

    return [
        var("web_tls_dir", "/etc/nginx/presence-appliance-tls"),
        var("web_cache_dir", "/var/cache/nginx/presence-appliance"),
        var("web_log_dir", "/var/log/nginx"),
        var("dhcp_lease_file", "/var/lib/misc/dnsmasq.leases"),
        var("access_point_hostapd_dir", "/etc/hostapd") + "/hostapd.conf",
        var("web_nginx_conf", "/etc/nginx/nginx.conf"),
        "/etc/chrony/chrony.conf",
        var("wireguard_interface", "wg0"),
        "/etc/presence-appliance/firewall.nft",  # docs/firewall.md
        var("recordings_helper", "/usr/local/sbin/presence-recordings"),
        var("recordings_config", "/etc/presence-appliance/recordings.json"),
        recordings_path(variables) or "",
        var("snapshot_command", "/usr/local/sbin/presence-snapshot"),
        var("snapshot_spec_file", "/etc/presence-appliance/snapshot.json"),
    ]


def recordings_path(variables: dict[str, Any]) -> str | None:
    """The recordings' storage path when a camera of this Pi records (None otherwise)."""
    from appliance.recordings import recording_cameras

    settings = variables.get("recordings")
    if not isinstance(settings, dict) or not recording_cameras(variables):
        return None
    path = settings.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        return "/srv/presence-recordings"  # the schema's default (a bad path: validate says)
    return path.rstrip("/") or "/"


def probe(host_name: str, variables: dict[str, Any], timeout: float = 60.0) -> RemoteResult:
    """Gather the facts of one Pi in one ssh call (raises RemoteError when it cannot)."""
    return run_script(host_name, variables, SCRIPT, probe_args(variables), timeout=timeout)
