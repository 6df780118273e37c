#!/usr/bin/env bash
# bkf-node.sh: install and run a pinned, mTLS-only buildkitd on this host.
#
# ONE script for every host backend: EC2 user data and SSH hosts run it alike
# (components/node_bootstrap.py wraps it with the node's settings). Settings come
# from $BKF_ENV_FILE (default /etc/buildkit-farm/node.env), written next to
# buildkitd.toml by the wrapper.
#
#   bkf-node.sh install      install/upgrade, prepare the data volume, install certs,
#                            (re)start buildkitd and check it over the unix socket
#   bkf-node.sh certs        (re)install certs; restart buildkitd only if they changed
#   bkf-node.sh restart|stop|start|status
#   bkf-node.sh uninstall [--purge-state]
#                            stop and remove what install added; the build cache on
#                            the data volume stays unless --purge-state is given
#   bkf-node.sh supervise    internal: keeps buildkitd running on hosts without systemd
set -euo pipefail
# errors inside $(...) must stop the script too (e.g. certificates that cannot be fetched)
shopt -s inherit_errexit
umask 022

BKF_ENV_FILE=${BKF_ENV_FILE:-/etc/buildkit-farm/node.env}
if [ -r "$BKF_ENV_FILE" ]; then
  # shellcheck source=/dev/null
  . "$BKF_ENV_FILE"
fi

BKF_NODE_NAME=${BKF_NODE_NAME:-node}
BKF_PLATFORM=${BKF_PLATFORM:-}
BKF_BUILDKIT_VERSION=${BKF_BUILDKIT_VERSION:-}
BKF_BUILDKIT_SHA256=${BKF_BUILDKIT_SHA256:-}
BKF_ARTIFACT=${BKF_ARTIFACT:-}
BKF_INSTALL_DIR=${BKF_INSTALL_DIR:-/opt/buildkit-farm}
BKF_CONFIG_DIR=${BKF_CONFIG_DIR:-/etc/buildkit}
BKF_STATE_DIR=${BKF_STATE_DIR:-/var/lib/buildkit}
BKF_RUN_DIR=${BKF_RUN_DIR:-/run/buildkit}
BKF_LOG_FILE=${BKF_LOG_FILE:-/var/log/buildkit-farm/buildkitd.log}
BKF_PORT=${BKF_PORT:-1234}
BKF_INIT=${BKF_INIT:-auto}
BKF_CERT_SOURCE=${BKF_CERT_SOURCE:-files}
BKF_SSM_PREFIX=${BKF_SSM_PREFIX:-}
BKF_AWS_REGION=${BKF_AWS_REGION:-}
BKF_DATA_DEVICE=${BKF_DATA_DEVICE:-}
BKF_DATA_DEVICE_WAIT=${BKF_DATA_DEVICE_WAIT:-600}
BKF_DATA_FSTAB=${BKF_DATA_FSTAB:-0}
BKF_BRIDGE_SUBNET=${BKF_BRIDGE_SUBNET:-10.213.0.0/16}
BKF_ALLOW_EMULATION=${BKF_ALLOW_EMULATION:-0}
BKF_PER_BOOT_HOOK=${BKF_PER_BOOT_HOOK:-0}
BKF_STOP_TIMEOUT=${BKF_STOP_TIMEOUT:-30}

TLS_DIR="$BKF_CONFIG_DIR/tls"
CONFIG="$BKF_CONFIG_DIR/buildkitd.toml"
SOCK="$BKF_RUN_DIR/buildkitd.sock"
BIN="$BKF_INSTALL_DIR/bin"
CNI_DIR="$BKF_INSTALL_DIR/cni/bin"
SUPERVISOR_PID="$BKF_RUN_DIR/supervisor.pid"
DAEMON_PID="$BKF_RUN_DIR/buildkitd.pid"
UNIT=/etc/systemd/system/buildkitd.service
FW_CHAIN=BKF-ISOLATION
export PATH="$BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

log() { printf '%s bkf-node[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BKF_NODE_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

use_systemd() {
  case "$BKF_INIT" in
    systemd) return 0 ;;
    none) return 1 ;;
    *) [ -d /run/systemd/system ] ;;
  esac
}

host_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64|arm64) echo arm64 ;;
    *) die "unsupported host architecture $(uname -m)" ;;
  esac
}

check_platform() {
  [ -n "$BKF_PLATFORM" ] || die "BKF_PLATFORM is not set"
  local want="${BKF_PLATFORM#linux/}" have
  have=$(host_arch)
  if [ "$want" != "$have" ]; then
    [ "$BKF_ALLOW_EMULATION" = 1 ] ||
      die "node platform $BKF_PLATFORM needs a $want host, this one is $have (emulation is off)"
    [ -e "/proc/sys/fs/binfmt_misc/qemu-${want/arm64/aarch64}" ] ||
      die "node platform $BKF_PLATFORM on a $have host needs binfmt_misc qemu-${want/arm64/aarch64}"
    log "platform $BKF_PLATFORM runs under emulation on this $have host (test setups only)"
  fi
}

# ------------------------------------------------------------------ buildkit
install_buildkit() {
  [ -n "$BKF_BUILDKIT_VERSION" ] || die "BKF_BUILDKIT_VERSION is not set"
  [[ "$BKF_BUILDKIT_SHA256" =~ ^[0-9a-f]{64}$ ]] || die "BKF_BUILDKIT_SHA256 is not a sha256: '$BKF_BUILDKIT_SHA256'"
  local arch dest tmp tarball
  arch=$(host_arch)
  dest="$BKF_INSTALL_DIR/buildkit-$BKF_BUILDKIT_VERSION-$BKF_BUILDKIT_SHA256"
  if [ ! -x "$dest/bin/buildkitd" ]; then
    tmp=$(mktemp -d "$BKF_INSTALL_DIR/.tmp.XXXXXX")
    tarball="$tmp/buildkit.tar.gz"
    if [ -n "$BKF_ARTIFACT" ]; then
      [ -f "$BKF_ARTIFACT" ] || die "artifact $BKF_ARTIFACT is missing"
      cp "$BKF_ARTIFACT" "$tarball"
    else
      local url="https://github.com/moby/buildkit/releases/download/$BKF_BUILDKIT_VERSION/buildkit-$BKF_BUILDKIT_VERSION.linux-$arch.tar.gz"
      log "downloading $url"
      curl -fsSL --retry 5 --retry-delay 3 -o "$tarball" "$url" || die "download of $url failed"
    fi
    echo "$BKF_BUILDKIT_SHA256  $tarball" | sha256sum -c --quiet - ||
      die "checksum mismatch for buildkit $BKF_BUILDKIT_VERSION ($arch): expected $BKF_BUILDKIT_SHA256, got $(sha256sum "$tarball" | cut -d' ' -f1)"
    mkdir -p "$tmp/x"
    tar -xzf "$tarball" -C "$tmp/x"
    if [ ! -x "$tmp/x/bin/buildkitd" ] || [ ! -x "$tmp/x/bin/buildctl" ]; then
      die "tarball has no bin/buildkitd and bin/buildctl"
    fi
    rm -rf "$dest"
    mv "$tmp/x" "$dest"
    rm -rf "$tmp"
    log "installed buildkit $BKF_BUILDKIT_VERSION ($arch) into $dest"
  fi
  ln -sfn "$dest/bin" "$BIN.new" && mv -T "$BIN.new" "$BIN"
  command -v buildkit-runc >/dev/null || command -v runc >/dev/null ||
    die "no runc: the release tarball ships buildkit-runc; otherwise install runc"
}

# ------------------------------------------------------------------ data volume
prepare_volume() {
  mkdir -p "$BKF_STATE_DIR"
  [ -n "$BKF_DATA_DEVICE" ] || return 0
  local waited=0 dev fstype uuid current
  # An EBS attachment may complete after first boot; wait for the device.
  while [ ! -b "$BKF_DATA_DEVICE" ]; do
    [ "$waited" -lt "$BKF_DATA_DEVICE_WAIT" ] || die "data device $BKF_DATA_DEVICE did not appear in ${BKF_DATA_DEVICE_WAIT}s"
    sleep 2; waited=$((waited + 2))
  done
  dev=$(readlink -f "$BKF_DATA_DEVICE")
  fstype=$(blkid -p -s TYPE -o value "$dev" 2>/dev/null || true)
  if [ -z "$fstype" ]; then
    if blkid -p -s PTTYPE -o value "$dev" 2>/dev/null | grep -q .; then
      die "$dev has a partition table and no filesystem; refusing to format it"
    fi
    log "formatting blank data device $dev"
    mkfs.ext4 -q -L bkf-state -m 0 "$dev"
  elif [ "$fstype" != ext4 ]; then
    die "$dev holds a $fstype filesystem, expected ext4; refusing to touch it"
  fi
  uuid=$(blkid -s UUID -o value "$dev")
  [ -n "$uuid" ] || die "no filesystem UUID on $dev"
  if [ "$BKF_DATA_FSTAB" = 1 ]; then
    local line="UUID=$uuid $BKF_STATE_DIR ext4 defaults,nofail,x-systemd.device-timeout=300s 0 2"
    if ! grep -qxF "$line" /etc/fstab; then
      grep -v "[[:space:]]${BKF_STATE_DIR}[[:space:]]" /etc/fstab >/etc/fstab.bkf || true
      echo "$line" >>/etc/fstab.bkf && mv /etc/fstab.bkf /etc/fstab
    fi
  fi
  if mountpoint -q "$BKF_STATE_DIR"; then
    current=$(findmnt -n -o UUID --target "$BKF_STATE_DIR" || true)
    [ "$current" = "$uuid" ] || die "$BKF_STATE_DIR is mounted from another filesystem ($current), expected UUID=$uuid"
  else
    mount -U "$uuid" "$BKF_STATE_DIR"
    log "mounted UUID=$uuid on $BKF_STATE_DIR"
  fi
  chmod 0711 "$BKF_STATE_DIR"
}

# ------------------------------------------------------------------ RUN-step network
# Install a distribution package when a tool is missing (EC2 images are minimal).
install_package() {
  if command -v dnf >/dev/null; then dnf install -y -q "$1" >&2
  elif command -v apt-get >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
  else return 1
  fi
}

install_cni() {
  mkdir -p "$CNI_DIR"
  local p d found
  for p in bridge host-local loopback firewall; do
    found=""
    # release tarballs since v0.13 bundle the plugins as buildkit-cni-<name>
    for d in "$BIN/buildkit-cni-$p" /usr/lib/cni/"$p" /usr/libexec/cni/"$p" /opt/cni/bin/"$p"; do
      if [ -x "$d" ]; then found="$d"; break; fi
    done
    if [ -z "$found" ] && [ -z "${BKF_CNI_TRIED:-}" ]; then
      BKF_CNI_TRIED=1
      install_package containernetworking-plugins containernetworking-plugins || true
      install_cni
      return
    fi
    [ -n "$found" ] || die "CNI plugin '$p' not found (install containernetworking-plugins)"
    ln -sf "$found" "$CNI_DIR/$p"
  done
}

# RUN steps live on the bridge subnet: keep them away from the cloud metadata
# service and from every address of this host (this daemon's port, sshd, ...).
# The raw table runs before the filter rules the CNI plugins insert (which
# accept bridge traffic), so these drops cannot be overtaken.
firewall() {
  command -v iptables >/dev/null || install_package iptables-nft iptables || true
  command -v iptables >/dev/null || die "iptables is required to isolate build steps"
  iptables -t raw -N "$FW_CHAIN" 2>/dev/null || iptables -t raw -F "$FW_CHAIN"
  iptables -t raw -A "$FW_CHAIN" -s "$BKF_BRIDGE_SUBNET" -d 169.254.169.254/32 -j DROP
  iptables -t raw -A "$FW_CHAIN" -s "$BKF_BRIDGE_SUBNET" -m addrtype --dst-type LOCAL -j DROP
  iptables -t raw -C PREROUTING -j "$FW_CHAIN" 2>/dev/null || iptables -t raw -I PREROUTING 1 -j "$FW_CHAIN"
}

firewall_remove() {
  command -v iptables >/dev/null || return 0
  while iptables -t raw -D PREROUTING -j "$FW_CHAIN" 2>/dev/null; do :; done
  iptables -t raw -F "$FW_CHAIN" 2>/dev/null || true
  iptables -t raw -X "$FW_CHAIN" 2>/dev/null || true
}

# ------------------------------------------------------------------ certificates
# (missing files hash as empty: the first install then counts as a change)
cert_fingerprint() {
  { cat "$TLS_DIR/ca.pem" "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" 2>/dev/null || true; } | sha256sum | cut -d' ' -f1
}

# The bundle on stdin: "### ca.pem", "### cert.pem", "### key.pem" headers, each
# followed by its PEM. Secrets travel on stdin, never on a command line.
split_bundle() {
  awk -v dir="$1" '
    /^### (ca|cert|key)\.pem$/ { out = dir "/" $2; next }
    out != "" { print > out }
  '
}

fetch_ssm() {
  local name
  for name in ca cert key; do
    aws ssm get-parameter --region "$BKF_AWS_REGION" --with-decryption \
      --name "$BKF_SSM_PREFIX/$name" --query Parameter.Value --output text >"$1/$name.pem" ||
      die "cannot read $BKF_SSM_PREFIX/$name from SSM Parameter Store"
  done
}

# Prints "changed" when new material was installed.
install_certs() {
  mkdir -p "$TLS_DIR"
  chmod 0700 "$TLS_DIR"
  local tmp before f
  tmp=$(mktemp -d "$BKF_CONFIG_DIR/.tls.XXXXXX")
  # (this runs in $(...): the trap only cleans up this subshell's staging dir; the path is
  # expanded now because $tmp is gone by the time the trap runs)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  chmod 0700 "$tmp"
  case "$BKF_CERT_SOURCE" in
    stdin) (umask 077; split_bundle "$tmp") ;;
    ssm) (umask 077; fetch_ssm "$tmp") ;;
    files) rm -rf "$tmp"; return 0 ;;
    *) die "BKF_CERT_SOURCE must be stdin, ssm or files, not '$BKF_CERT_SOURCE'" ;;
  esac
  for f in ca cert; do
    grep -q -- '-----BEGIN CERTIFICATE-----' "$tmp/$f.pem" 2>/dev/null || { rm -rf "$tmp"; die "$f.pem from $BKF_CERT_SOURCE is not a PEM certificate"; }
  done
  grep -q -- '-----BEGIN .*PRIVATE KEY-----' "$tmp/key.pem" 2>/dev/null || { rm -rf "$tmp"; die "key.pem from $BKF_CERT_SOURCE is not a PEM private key"; }
  before=$(cert_fingerprint)
  chmod 0644 "$tmp/ca.pem" "$tmp/cert.pem"
  chmod 0600 "$tmp/key.pem"
  for f in ca cert key; do mv -f "$tmp/$f.pem" "$TLS_DIR/$f.pem"; done
  rm -rf "$tmp"
  [ "$before" = "$(cert_fingerprint)" ] || echo changed
}

require_tls() {
  local f
  for f in ca.pem cert.pem key.pem; do
    [ -s "$TLS_DIR/$f" ] || die "refusing to start buildkitd without TLS material: $TLS_DIR/$f is missing or empty"
  done
  [ -s "$CONFIG" ] || die "refusing to start buildkitd without $CONFIG"
}

# ------------------------------------------------------------------ service
# TLS flags repeat the config on purpose: buildkitd starts with an empty config
# if the file is missing, and a TCP listener without TLS only logs a warning.
DAEMON_ARGV=("$BIN/buildkitd" --config "$CONFIG"
  --tlscert "$TLS_DIR/cert.pem" --tlskey "$TLS_DIR/key.pem" --tlscacert "$TLS_DIR/ca.pem")

write_unit() {
  local new="$UNIT.new"
  cat >"$new" <<EOF
# Written by buildkit-farm (bkf-node.sh); changes are overwritten.
[Unit]
Description=BuildKit daemon (buildkit-farm node $BKF_NODE_NAME)
Wants=network-online.target
After=network-online.target local-fs.target
RequiresMountsFor=$BKF_STATE_DIR

[Service]
Environment=PATH=$PATH
ExecStartPre=$BKF_INSTALL_DIR/bkf-node.sh preflight
ExecStart=${DAEMON_ARGV[*]}
Restart=always
RestartSec=2
Delegate=yes
KillMode=mixed
TimeoutStopSec=${BKF_STOP_TIMEOUT}
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
EOF
  if ! cmp -s "$new" "$UNIT"; then mv "$new" "$UNIT"; systemctl daemon-reload; else rm -f "$new"; fi
}

supervise() {
  # Foreground loop (started detached by start_daemon): restart buildkitd if it
  # dies; on TERM stop it and exit.
  local child=""
  trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
  stopping=0
  echo $$ >"$SUPERVISOR_PID"
  while [ "$stopping" = 0 ]; do
    require_tls
    "${DAEMON_ARGV[@]}" &
    child=$!
    echo "$child" >"$DAEMON_PID"
    wait "$child" || true
    # wait returns early when a trapped signal arrives: reap the child for real
    while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
    rm -f "$DAEMON_PID"
    [ "$stopping" = 0 ] || break
    log "buildkitd exited; restarting in 2s"
    sleep 2
  done
  rm -f "$SUPERVISOR_PID"
}

supervisor_running() { [ -s "$SUPERVISOR_PID" ] && kill -0 "$(cat "$SUPERVISOR_PID")" 2>/dev/null; }

start_daemon() {
  require_tls
  mkdir -p "$BKF_RUN_DIR"
  if use_systemd; then
    write_unit
    systemctl enable --now buildkitd.service >/dev/null
  elif ! supervisor_running; then
    mkdir -p "$(dirname "$BKF_LOG_FILE")"
    setsid "$BKF_INSTALL_DIR/bkf-node.sh" supervise </dev/null >>"$BKF_LOG_FILE" 2>&1 &
    local i
    for i in $(seq 50); do supervisor_running && break; sleep 0.1; [ "$i" != 50 ] || die "supervisor did not start"; done
  fi
}

stop_daemon() {
  if use_systemd; then
    systemctl stop buildkitd.service 2>/dev/null || true
    return 0
  fi
  supervisor_running || return 0
  local pid i
  pid=$(cat "$SUPERVISOR_PID")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq $((BKF_STOP_TIMEOUT * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "buildkitd did not stop in ${BKF_STOP_TIMEOUT}s; killing it"
    [ -s "$DAEMON_PID" ] && kill -KILL "$(cat "$DAEMON_PID")" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$SUPERVISOR_PID" "$DAEMON_PID"
  : "$i"
}

restart_daemon() {
  if use_systemd; then
    require_tls; write_unit; systemctl restart buildkitd.service
  else
    stop_daemon; start_daemon
  fi
}

# Wait for the daemon on its unix socket and check it serves the right platform.
check_daemon() {
  local i out=""
  for i in $(seq 60); do
    if out=$(buildctl --addr "unix://$SOCK" debug workers 2>&1); then break; fi
    sleep 1
    [ "$i" != 60 ] || die "buildkitd is not answering on $SOCK: $out"
  done
  grep -q "$BKF_PLATFORM" <<<"$out" || die "buildkitd does not report platform $BKF_PLATFORM: $out"
  log "buildkitd is up: $(tr -s ' \n' ' ' <<<"$out")"
}

install_per_boot_hook() {
  # EC2: user data runs once per instance; this hook re-runs the *current* user
  # data (fetched with IMDSv2) on every boot, so a changed config applied by a
  # stop/start takes effect without replacing the instance.
  [ "$BKF_PER_BOOT_HOOK" = 1 ] && [ -d /var/lib/cloud/scripts/per-boot ] || return 0
  cat >/var/lib/cloud/scripts/per-boot/buildkit-farm.sh <<'EOF'
#!/bin/bash
set -euo pipefail
t=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
curl -fsS -H "X-aws-ec2-metadata-token: $t" http://169.254.169.254/latest/user-data -o /run/bkf-user-data
# buildkit-farm sends its user data gzipped
if gzip -t /run/bkf-user-data 2>/dev/null; then gunzip -c /run/bkf-user-data >/run/bkf-user-data.sh; else cp /run/bkf-user-data /run/bkf-user-data.sh; fi
exec bash /run/bkf-user-data.sh
EOF
  chmod 0755 /var/lib/cloud/scripts/per-boot/buildkit-farm.sh
}

cmd_install() {
  check_platform
  mkdir -p "$BKF_INSTALL_DIR" "$BKF_CONFIG_DIR" "$BKF_RUN_DIR"
  local self
  self=$(readlink -f "$0")
  [ "$self" = "$BKF_INSTALL_DIR/bkf-node.sh" ] || install -m 0755 "$self" "$BKF_INSTALL_DIR/bkf-node.sh"
  install_buildkit
  prepare_volume
  install_cni
  firewall
  local changed
  changed=$(install_certs)
  require_tls
  local stamp="$BKF_RUN_DIR/config.sha256" want
  want=$({ cat "$CONFIG" "$BKF_ENV_FILE" 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
  if supervisor_running || { use_systemd && systemctl is-active -q buildkitd.service; }; then
    if [ -n "$changed" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      log "config or certificates changed; restarting buildkitd"
      restart_daemon
    fi
  else
    start_daemon
  fi
  echo "$want" >"$stamp"
  install_per_boot_hook
  check_daemon
}

cmd_certs() {
  local changed
  changed=$(install_certs)
  if [ -n "$changed" ]; then
    log "certificates changed; restarting buildkitd"
    restart_daemon
    check_daemon
  else
    log "certificates unchanged"
  fi
}

cmd_uninstall() {
  local purge=0
  [ "${1:-}" = --purge-state ] && purge=1
  stop_daemon
  if use_systemd && [ -f "$UNIT" ]; then
    systemctl disable buildkitd.service >/dev/null 2>&1 || true
    rm -f "$UNIT"; systemctl daemon-reload
  fi
  firewall_remove
  rm -f /var/lib/cloud/scripts/per-boot/buildkit-farm.sh
  if [ "$purge" = 1 ]; then
    log "purging build state in $BKF_STATE_DIR"
    find "$BKF_STATE_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null || true
  fi
  if [ -n "$BKF_DATA_DEVICE" ] && mountpoint -q "$BKF_STATE_DIR"; then
    umount "$BKF_STATE_DIR" || log "could not unmount $BKF_STATE_DIR"
  fi
  if [ -n "$BKF_DATA_DEVICE" ] && [ -f /etc/fstab ]; then
    grep -v "[[:space:]]${BKF_STATE_DIR}[[:space:]]" /etc/fstab >/etc/fstab.bkf || true
    mv /etc/fstab.bkf /etc/fstab
  fi
  local p
  for p in "$BKF_INSTALL_DIR" "$TLS_DIR" "$CONFIG" "$BKF_RUN_DIR" "$(dirname "$BKF_ENV_FILE")"; do
    if mountpoint -q "$p"; then
      # a mount point (its own volume, or a test host's private dir): empty it, keep it
      find "$p" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    else
      rm -rf "$p"
    fi
  done
  log "uninstalled (build state $( [ "$purge" = 1 ] && echo purged || echo kept))"
}

case "${1:-install}" in
  install) cmd_install ;;
  certs) cmd_certs ;;
  start) start_daemon; check_daemon ;;
  stop) stop_daemon ;;
  restart) restart_daemon; check_daemon ;;
  status) check_daemon ;;
  preflight) require_tls ;;
  supervise) supervise ;;
  uninstall) shift; cmd_uninstall "$@" ;;
  *) die "usage: $0 install|certs|start|stop|restart|status|uninstall [--purge-state]" ;;
esac
