#!/bin/sh
# HoodCloud installer for one VM (Ubuntu 22.04/24.04 or any systemd Linux).
#
#   sh install.sh              install, or upgrade when re-run (idempotent)
#   sh install.sh uninstall    stop and remove (data is kept unless HOODCLOUD_PURGE=1)
#
# Environment:
#   HOODCLOUD_BINARY       path of the hoodcloud binary to install (default: ./bin/hoodcloud)
#   HOODCLOUD_URL          download the binary from this URL instead (needs HOODCLOUD_SHA256)
#   HOODCLOUD_SHA256       expected SHA-256 of the binary; checked whenever set
#   HOODCLOUD_AGENT_BINARY the ops-agent (hoodcloud-agent) the appliance hands to node hosts
#                          (default: hoodcloud-agent beside HOODCLOUD_BINARY)
#   HOODCLOUD_AGENT_URL    download it from this URL instead (needs HOODCLOUD_AGENT_SHA256)
#   HOODCLOUD_AGENT_SHA256 expected SHA-256 of the ops-agent; checked whenever set
#   HOODCLOUD_DATA_DIR     state directory (default: /var/lib/hoodcloud)
#   HOODCLOUD_HTTP_ADDR    HTTP listen address (default: 127.0.0.1:8080)
#   HOODCLOUD_AGENT_ADDR   agent gateway listen address (default: 0.0.0.0:8443)
#   HOODCLOUD_PURGE        with uninstall: 1 also deletes the data dir and the env file
#   HOODCLOUD_ROOT         install under this root instead of / (for tests; systemd is skipped)
#
# Files: /usr/local/bin/hoodcloud, /usr/local/bin/hoodcloud-agent, /etc/hoodcloud/hoodcloud.env (0600),
# /etc/systemd/system/hoodcloud.service, /usr/local/bin/hoodcloud-uninstall.sh.
set -eu

ROOT=${HOODCLOUD_ROOT:-}
BIN_DIR=$ROOT/usr/local/bin
ETC_DIR=$ROOT/etc/hoodcloud
UNIT=$ROOT/etc/systemd/system/hoodcloud.service
ENV_FILE=$ETC_DIR/hoodcloud.env
DATA_DIR=${HOODCLOUD_DATA_DIR:-/var/lib/hoodcloud}
changed=0

say() { printf 'hoodcloud-install: %s\n' "$*"; }
fail() { say "error: $*" >&2; exit 1; }
systemd() { [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# install_file SRC DEST MODE: copy only when the content differs.
install_file() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		return 0
	fi
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2.new" && chmod "$3" "$2.new" && mv "$2.new" "$2"
	changed=1
	say "wrote $2"
}

fetch_binary() {
	tmp=$(mktemp)
	if [ -n "${HOODCLOUD_URL:-}" ]; then
		[ -n "${HOODCLOUD_SHA256:-}" ] || fail "HOODCLOUD_URL needs HOODCLOUD_SHA256 to verify the download"
		curl -fsSL "$HOODCLOUD_URL" -o "$tmp" || fail "download failed"
	else
		src=${HOODCLOUD_BINARY:-./bin/hoodcloud}
		[ -f "$src" ] || fail "no binary at $src (run 'make build' or set HOODCLOUD_BINARY)"
		cp "$src" "$tmp"
	fi
	if [ -n "${HOODCLOUD_SHA256:-}" ] && [ "$(sha256_of "$tmp")" != "$HOODCLOUD_SHA256" ]; then
		rm -f "$tmp"
		fail "checksum mismatch: the binary is not the expected one"
	fi
	chmod 0755 "$tmp"
	"$tmp" version >/dev/null 2>&1 || { rm -f "$tmp"; fail "the binary does not run on this machine"; }
	install_file "$tmp" "$BIN_DIR/hoodcloud" 0755
	rm -f "$tmp"
}

# fetch_agent installs the ops-agent beside the appliance, which serves it
# to the hosts it creates; without one the appliance reports it missing.
fetch_agent() {
	tmp=$(mktemp)
	if [ -n "${HOODCLOUD_AGENT_URL:-}" ]; then
		[ -n "${HOODCLOUD_AGENT_SHA256:-}" ] || fail "HOODCLOUD_AGENT_URL needs HOODCLOUD_AGENT_SHA256 to verify the download"
		curl -fsSL "$HOODCLOUD_AGENT_URL" -o "$tmp" || fail "ops-agent download failed"
	else
		src=${HOODCLOUD_AGENT_BINARY:-$(dirname "${HOODCLOUD_BINARY:-./bin/hoodcloud}")/hoodcloud-agent}
		if [ ! -f "$src" ]; then
			rm -f "$tmp"
			say "warning: no ops-agent at $src: node hosts cannot download it (run 'make build' or set HOODCLOUD_AGENT_BINARY)"
			return 0
		fi
		cp "$src" "$tmp"
	fi
	if [ -n "${HOODCLOUD_AGENT_SHA256:-}" ] && [ "$(sha256_of "$tmp")" != "$HOODCLOUD_AGENT_SHA256" ]; then
		rm -f "$tmp"
		fail "checksum mismatch: the ops-agent is not the expected one"
	fi
	chmod 0755 "$tmp"
	"$tmp" version >/dev/null 2>&1 || { rm -f "$tmp"; fail "the ops-agent does not run on this machine"; }
	install_file "$tmp" "$BIN_DIR/hoodcloud-agent" 0755
	rm -f "$tmp"
}

write_env() {
	[ -f "$ENV_FILE" ] && return 0 # the operator's edits win on re-runs
	mkdir -p "$ETC_DIR"
	umask 077
	cat >"$ENV_FILE" <<ENV
# HoodCloud settings: each HOODCLOUD_* variable is a flag of 'hoodcloud serve'.
HOODCLOUD_DATA_DIR=$DATA_DIR
HOODCLOUD_HTTP_ADDR=${HOODCLOUD_HTTP_ADDR:-127.0.0.1:8080}
HOODCLOUD_AGENT_ADDR=${HOODCLOUD_AGENT_ADDR:-0.0.0.0:8443}
HOODCLOUD_LOG_FORMAT=json
ENV
	chmod 0600 "$ENV_FILE"
	changed=1
	say "wrote $ENV_FILE"
}

write_unit() {
	tmp=$(mktemp)
	cat >"$tmp" <<UNIT
[Unit]
Description=HoodCloud control plane
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=/etc/hoodcloud/hoodcloud.env
ExecStart=/usr/local/bin/hoodcloud serve
Restart=on-failure
RestartSec=2
TimeoutStopSec=20
DynamicUser=yes
StateDirectory=hoodcloud
ReadWritePaths=$DATA_DIR
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT
	install_file "$tmp" "$UNIT" 0644
	rm -f "$tmp"
}

write_uninstaller() {
	tmp=$(mktemp)
	cat >"$tmp" <<UNINSTALL
#!/bin/sh
# Generated by install.sh: removes HoodCloud; HOODCLOUD_PURGE=1 also deletes its data.
set -eu
if [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now hoodcloud.service 2>/dev/null || true
	systemctl daemon-reload
fi
rm -f "$UNIT" "$BIN_DIR/hoodcloud" "$BIN_DIR/hoodcloud-agent"
if [ "\${HOODCLOUD_PURGE:-0}" = 1 ]; then
	rm -rf "$ETC_DIR" "$ROOT$DATA_DIR"
fi
rm -f "$BIN_DIR/hoodcloud-uninstall.sh"
echo "hoodcloud removed"
UNINSTALL
	install_file "$tmp" "$BIN_DIR/hoodcloud-uninstall.sh" 0755
	rm -f "$tmp"
}

install() {
	[ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || fail "run as root (or with sudo)"
	fetch_binary
	fetch_agent
	write_env
	write_unit
	write_uninstaller
	if systemd; then
		systemctl daemon-reload
		systemctl enable hoodcloud.service >/dev/null 2>&1
		if [ "$changed" = 1 ]; then
			systemctl restart hoodcloud.service
			say "hoodcloud (re)started"
		else
			systemctl start hoodcloud.service
			say "nothing changed; hoodcloud is running"
		fi
	fi
	say "installed $("$BIN_DIR/hoodcloud" version)"
	say "next: edit $ENV_FILE, check 'curl -s http://127.0.0.1:8080/readyz', logs with 'journalctl -u hoodcloud -f'"
}

case "${1:-install}" in
install) install ;;
uninstall)
	[ -x "$BIN_DIR/hoodcloud-uninstall.sh" ] || fail "hoodcloud is not installed"
	"$BIN_DIR/hoodcloud-uninstall.sh"
	;;
*) fail "unknown action '$1' (want install or uninstall)" ;;
esac
