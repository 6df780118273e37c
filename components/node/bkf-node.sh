#!/usr/bin/env bash
# bkf-node.sh: install and run a pinned, mTLS-only buildkitd on this host.
#
# ONE script for every host backend: EC2 user data and SSH hosts run it alike
# (the program's node payload wraps it with the node's settings). Every setting
# comes from $BKF_ENV_FILE (default /etc/buildkit-farm/node.env), and the systemd
# unit and cloud-init per-boot hook are rendered files next to this script: the
# payload writes them all, this script only acts on them.
#
#   bkf-node.sh install      install/upgrade, prepare the data volume, install certs,
#                            (re)start buildkitd and check it over the unix socket
#   bkf-node.sh certs        (re)install certs; restart buildkitd only if they changed
#   bkf-node.sh restart|stop|start|status
#                            restart and stop first let builds in flight finish (BKF_DRAIN_TIMEOUT);
#                            lifecycle commands run one at a time (a lock in the run dir)
#   bkf-node.sh uninstall [--purge-state]
#                            stop and remove what install added; the build cache on
#                            the data volume stays unless --purge-state is given
#   bkf-node.sh run          internal: exec buildkitd (the unit's ExecStart, the supervisor's child)
#   bkf-node.sh supervise    internal: keeps buildkitd running on hosts without systemd
#   bkf-node.sh metrics      internal: exec the mTLS metrics endpoint (BKF_METRICS_PORT; 0: off)
set -euo pipefail
# errors inside $(...) must stop the script too (e.g. certificates that cannot be fetched)
shopt -s inherit_errexit
umask 022

BKF_ENV_FILE=${BKF_ENV_FILE:-/etc/buildkit-farm/node.env}
if [ -r "$BKF_ENV_FILE" ]; then
  # shellcheck source=/dev/null
  . "$BKF_ENV_FILE"
fi

# Every setting comes from the env file the payload renders (NodeSettings, in Python):
# this script has no defaults of its own, so a node never runs on a value Python did not choose.
# Empty is a valid value for some (no artifact, no data device); unset is never.
SETTINGS=(BKF_NODE_NAME BKF_PLATFORM BKF_BUILDKIT_VERSION BKF_BUILDKIT_SHA256 BKF_ARTIFACT BKF_RELEASE_URL
  BKF_INSTALL_DIR BKF_CONFIG_DIR BKF_STATE_DIR BKF_RUN_DIR BKF_CNI_DIR BKF_LOG_FILE BKF_PORT BKF_INIT
  BKF_CERT_SOURCE BKF_SSM_PREFIX BKF_AWS_REGION BKF_DATA_DEVICE BKF_DATA_DEVICE_WAIT BKF_DATA_FSTAB
  BKF_BRIDGE_SUBNET BKF_METADATA_CIDR BKF_ALLOW_EMULATION BKF_PER_BOOT_HOOK BKF_STOP_TIMEOUT
  BKF_DRAIN_TIMEOUT BKF_METRICS_PORT BKF_OTEL_ENDPOINT BKF_OTEL_PROTOCOL BKF_OTEL_HEADERS)
missing=()
for v in "${SETTINGS[@]}"; do [ -n "${!v+set}" ] || missing+=("$v"); done
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'bkf-node: ERROR: settings missing from %s: %s (the payload rendered by buildkit-farm writes them; run pulumi up again)\n' \
    "$BKF_ENV_FILE" "${missing[*]}" >&2
  exit 1
fi
unset missing v

TLS_DIR="$BKF_CONFIG_DIR/tls"
CONFIG="$BKF_CONFIG_DIR/buildkitd.toml"
SOCK="$BKF_RUN_DIR/buildkitd.sock"
BIN="$BKF_INSTALL_DIR/bin"
CNI_DIR="$BKF_CNI_DIR"
SUPERVISOR_PID="$BKF_RUN_DIR/supervisor.pid"
DAEMON_PID="$BKF_RUN_DIR/buildkitd.pid"
LIFECYCLE_LOCK="$BKF_RUN_DIR/lifecycle.lock"
UNIT=/etc/systemd/system/buildkitd.service
RENDERED_UNIT="$BKF_INSTALL_DIR/buildkitd.service"
RENDERED_PER_BOOT_HOOK="$BKF_INSTALL_DIR/per-boot-hook.sh"
METRICS_UNIT=/etc/systemd/system/bkf-metrics.service
RENDERED_METRICS_UNIT="$BKF_INSTALL_DIR/bkf-metrics.service"
METRICS_PROXY="$BKF_INSTALL_DIR/bkf-metrics.py"
METRICS_PIDS="$BKF_RUN_DIR/metrics.pids"
PER_BOOT_HOOK=/var/lib/cloud/scripts/per-boot/buildkit-farm.sh
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
      [ -n "$BKF_RELEASE_URL" ] || die "BKF_RELEASE_URL is empty and no BKF_ARTIFACT is set: nothing to install"
      log "downloading $BKF_RELEASE_URL"
      curl -fsSL --retry 5 --retry-delay 3 -o "$tarball" "$BKF_RELEASE_URL" || die "download of $BKF_RELEASE_URL failed"
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
# fstab_set LINE: replace this node's state-dir entry with LINE (empty: remove it). A unique
# temp file in /etc (same filesystem, so the rename is atomic) keeps fstab's mode and owner and
# never collides with another writer's temp file.
fstab_set() {
  local tmp
  tmp=$(mktemp /etc/.fstab.bkf.XXXXXX)
  if chmod --reference=/etc/fstab "$tmp" && chown --reference=/etc/fstab "$tmp" &&
    { grep -v "[[:space:]]${BKF_STATE_DIR}[[:space:]]" /etc/fstab || true; } >"$tmp"; then
    if [ -n "$1" ]; then echo "$1" >>"$tmp"; fi
    mv -f "$tmp" /etc/fstab
  else
    rm -f "$tmp"
    die "cannot update /etc/fstab"
  fi
}

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
    # -i 4096: an inode for every 4 KiB block. GC counts bytes, not inodes; with the default (one
    # per 16 KiB) a cache of small files runs out of inodes with a quarter of the volume used, and
    # GC never steps in. Now any file with data takes a block first (only empty files do not).
    mkfs.ext4 -q -L bkf-state -m 0 -i 4096 "$dev"
  elif [ "$fstype" != ext4 ]; then
    die "$dev holds a $fstype filesystem, expected ext4; refusing to touch it"
  fi
  uuid=$(blkid -s UUID -o value "$dev")
  [ -n "$uuid" ] || die "no filesystem UUID on $dev"
  if [ "$BKF_DATA_FSTAB" = 1 ]; then
    local line="UUID=$uuid $BKF_STATE_DIR ext4 defaults,nofail,x-systemd.device-timeout=300s 0 2"
    grep -qxF "$line" /etc/fstab || fstab_set "$line"
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
    if [ -z "$found" ] && [ -z "${CNI_TRIED:-}" ]; then
      CNI_TRIED=1
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
  iptables -t raw -A "$FW_CHAIN" -s "$BKF_BRIDGE_SUBNET" -d "$BKF_METADATA_CIDR" -j DROP
  iptables -t raw -A "$FW_CHAIN" -s "$BKF_BRIDGE_SUBNET" -m addrtype --dst-type LOCAL -j DROP
  iptables -t raw -C PREROUTING -j "$FW_CHAIN" 2>/dev/null || iptables -t raw -I PREROUTING 1 -j "$FW_CHAIN"
}

firewall_remove() {
  command -v iptables >/dev/null || return 0
  while iptables -t raw -D PREROUTING -j "$FW_CHAIN" 2>/dev/null; do :; done
  iptables -t raw -F "$FW_CHAIN" 2>/dev/null || true
  iptables -t raw -X "$FW_CHAIN" 2>/dev/null || true
}

# What the CNI bridge and firewall plugins leave in the host once the daemon is gone: the RUN-step
# bridge, the rules that name it, and the CNI-* chains (the plugins never remove those). The chains
# go only when nothing but jumps and RETURNs is left in them: another CNI user on the host keeps them.
cni_remove() {
  local bridge t rules line chain chains
  bridge=$(sed -n 's/^ *bridgeName = "\([^"]*\)".*/\1/p' "$CONFIG" 2>/dev/null || true)
  [ -n "$bridge" ] || return 0
  ip link del "$bridge" 2>/dev/null || true
  command -v iptables-save >/dev/null || return 0
  for t in filter nat; do
    rules=$(iptables-save -t "$t" 2>/dev/null) || continue
    # (iptables-save quotes its output for a shell: eval turns a saved rule back into a delete)
    while IFS= read -r line; do
      [ -z "$line" ] || eval "iptables -t $t -D ${line#-A }" || true
    done < <(grep -E -- "^-A .*-[io] $bridge( |\$)" <<<"$rules" || true)
    rules=$(iptables-save -t "$t")
    if grep -E -- '^-A CNI-' <<<"$rules" | grep -qvE -- '-j (RETURN|CNI-[^ ]+)$'; then
      log "CNI chains in the $t table hold other rules: left in place"
      continue
    fi
    while IFS= read -r line; do
      [ -z "$line" ] || eval "iptables -t $t -D ${line#-A }" || true
    done < <(grep -E -- '^-A [^ ]+ .*-j CNI-[^ ]+$' <<<"$rules" | grep -v -- '^-A CNI-' || true)
    mapfile -t chains < <(sed -n 's/^:\(CNI-[^ ]*\) .*/\1/p' <<<"$rules")
    for chain in "${chains[@]}"; do iptables -t "$t" -F "$chain"; done
    for chain in "${chains[@]}"; do iptables -t "$t" -X "$chain" || true; done
  done
}

# Mounts a daemon killed mid-build leaves under the state dir (the rootfs overlays of its RUN steps:
# one per kill -9, seen in the reliability suite). Deepest first; they would keep the volume busy.
# Uninstall only: after cni_remove (the CNI pool's namespaces are among them).
unmount_state_leftovers() {
  local m
  while IFS= read -r m; do
    [ -z "$m" ] || umount "$m" || umount -l "$m" || log "could not unmount $m"
  done < <(findmnt -rn -o TARGET | awk -v d="$BKF_STATE_DIR/" 'index($0, d) == 1' | sort -r)
}

# ------------------------------------------------------------------ certificates
# (missing files hash as empty: the first install then counts as a change)
# (the OTLP headers are a secret that travels with the key: a new value restarts the daemon too)
cert_fingerprint() {
  { cat "$TLS_DIR/ca.pem" "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" "$TLS_DIR/otel-headers" 2>/dev/null || true; } |
    sha256sum | cut -d' ' -f1
}

# The bundle on stdin: "### ca.pem", "### cert.pem", "### key.pem" headers, each
# followed by its PEM, and with config otel.headers "### otel-headers" and the value of
# OTEL_EXPORTER_OTLP_HEADERS. Secrets travel on stdin, never on a command line.
split_bundle() {
  awk -v dir="$1" '
    /^### ((ca|cert|key)\.pem|otel-headers)$/ { out = dir "/" $2; next }
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
  if [ "$BKF_OTEL_HEADERS" = 1 ]; then
    aws ssm get-parameter --region "$BKF_AWS_REGION" --with-decryption \
      --name "$BKF_SSM_PREFIX/otel-headers" --query Parameter.Value --output text >"$1/otel-headers" ||
      die "cannot read $BKF_SSM_PREFIX/otel-headers from SSM Parameter Store"
  fi
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
  # (never printed: the value is an API key)
  if [ "$BKF_OTEL_HEADERS" = 1 ] && [ ! -s "$tmp/otel-headers" ]; then
    rm -rf "$tmp"; die "config otel.headers is set but no otel-headers came from $BKF_CERT_SOURCE"
  fi
  before=$(cert_fingerprint)
  chmod 0644 "$tmp/ca.pem" "$tmp/cert.pem"
  chmod 0600 "$tmp/key.pem"
  for f in ca cert key; do mv -f "$tmp/$f.pem" "$TLS_DIR/$f.pem"; done
  if [ "$BKF_OTEL_HEADERS" = 1 ]; then
    chmod 0600 "$tmp/otel-headers"
    mv -f "$tmp/otel-headers" "$TLS_DIR/otel-headers"
  else
    rm -f "$TLS_DIR/otel-headers"
  fi
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

# ------------------------------------------------------------------ metrics
# The mTLS endpoint (bkf-metrics.py, rendered from components/node/metrics_proxy.py): it forwards
# GET /metrics from buildkitd's debug socket (root-only, in the run dir) and adds the farm's series.
metrics_on() { [ "$BKF_METRICS_PORT" != 0 ]; }

run_metrics() {
  metrics_on || die "BKF_METRICS_PORT is 0: no metrics endpoint on this node"
  [ -s "$METRICS_PROXY" ] || die "$METRICS_PROXY is missing: the payload renders it"
  exec python3 "$METRICS_PROXY" --port "$BKF_METRICS_PORT" --tls-dir "$TLS_DIR" \
    --debug-socket "$BKF_RUN_DIR/debug.sock" --socket "$SOCK" --buildctl "$BIN/buildctl" \
    --config "$CONFIG" --state-dir "$BKF_STATE_DIR"
}

# systemd: the rendered unit goes in with metrics on, out with metrics off (it follows buildkitd:
# WantedBy and PartOf). Without systemd the supervisor runs the endpoint beside the daemon.
sync_metrics() {
  if metrics_on; then
    command -v python3 >/dev/null || install_package python3 python3 || true
    command -v python3 >/dev/null || die "python3 is required for the metrics endpoint (metrics.port)"
  fi
  use_systemd || return 0
  if metrics_on; then
    [ -s "$RENDERED_METRICS_UNIT" ] || die "$RENDERED_METRICS_UNIT is missing: the payload renders it"
    if ! cmp -s "$RENDERED_METRICS_UNIT" "$METRICS_UNIT"; then
      install -m 0644 "$RENDERED_METRICS_UNIT" "$METRICS_UNIT"
      systemctl daemon-reload
    fi
    systemctl enable bkf-metrics.service >/dev/null 2>&1
  else
    metrics_unit_remove
  fi
}

metrics_unit_remove() {
  use_systemd && [ -f "$METRICS_UNIT" ] || return 0
  systemctl disable --now bkf-metrics.service >/dev/null 2>&1 || true
  rm -f "$METRICS_UNIT" "$RENDERED_METRICS_UNIT"
  systemctl daemon-reload
}

# Keeps the endpoint running beside the daemon on hosts without systemd (a child of the supervisor).
supervise_metrics() {
  local child=""
  trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; rm -f "$METRICS_PIDS"; exit 0' TERM INT
  while :; do
    "$BKF_INSTALL_DIR/bkf-node.sh" metrics &
    child=$!
    # (for stop_daemon, should it have to kill the supervisor outright)
    echo "$BASHPID $child" >"$METRICS_PIDS"
    wait "$child" || true
    sleep 1
  done
}

# ------------------------------------------------------------------ service
# TLS flags repeat the config on purpose: buildkitd starts with an empty config
# if the file is missing, and a TCP listener without TLS only logs a warning.
DAEMON_ARGV=("$BIN/buildkitd" --config "$CONFIG"
  --tlscert "$TLS_DIR/cert.pem" --tlskey "$TLS_DIR/key.pem" --tlscacert "$TLS_DIR/ca.pem")

write_unit() {
  [ -s "$RENDERED_UNIT" ] || die "$RENDERED_UNIT is missing: the payload renders it"
  if ! cmp -s "$RENDERED_UNIT" "$UNIT"; then
    install -m 0644 "$RENDERED_UNIT" "$UNIT"
    systemctl daemon-reload
  fi
}

# The daemon itself: systemd's ExecStart and the supervisor both come here, so the argv is
# written once. exec: the init system's main PID is buildkitd.
run_daemon() {
  require_tls
  # A daemon that was killed (kill -9, OOM) left its build containers running and their mounts in
  # place: clear them before the new one starts, when no daemon holds the state dir (its own lock).
  if flock -n "$BKF_STATE_DIR/buildkitd.lock" true 2>/dev/null; then
    reap_build_containers
  fi
  # metrics turned off: the debug socket an earlier daemon made would be left behind
  metrics_on || rm -f "$BKF_RUN_DIR/debug.sock"
  # config otel: buildkitd's own exporter reads the standard variables (util/tracing/detect/otlp.go)
  if [ -n "$BKF_OTEL_ENDPOINT" ]; then
    export OTEL_EXPORTER_OTLP_ENDPOINT="$BKF_OTEL_ENDPOINT" OTEL_EXPORTER_OTLP_PROTOCOL="$BKF_OTEL_PROTOCOL"
    export OTEL_RESOURCE_ATTRIBUTES="bkf.node=$BKF_NODE_NAME,bkf.platform=$BKF_PLATFORM"
    # config otel.headers: in the daemon's environment only (root-only /proc/PID/environ), never its argv
    if [ "$BKF_OTEL_HEADERS" = 1 ] && [ -s "$TLS_DIR/otel-headers" ]; then
      OTEL_EXPORTER_OTLP_HEADERS=$(cat "$TLS_DIR/otel-headers")
      export OTEL_EXPORTER_OTLP_HEADERS
    fi
  fi
  exec "${DAEMON_ARGV[@]}"
}

supervise() {
  # Foreground loop (started detached by start_daemon): restart buildkitd if it
  # dies; on TERM stop it and exit.
  local child=""
  trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
  stopping=0
  echo $$ >"$SUPERVISOR_PID"
  local started delay metrics=""
  if metrics_on; then supervise_metrics & metrics=$!; fi
  while [ "$stopping" = 0 ]; do
    started=$SECONDS
    "$BKF_INSTALL_DIR/bkf-node.sh" run &
    child=$!
    echo "$child" >"$DAEMON_PID"
    wait "$child" || true
    # wait returns early when a trapped signal arrives: reap the child for real
    while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
    rm -f "$DAEMON_PID"
    [ "$stopping" = 0 ] || break
    # at once after a crash or kill -9 (a CI job's retry is waiting); a daemon that keeps dying
    # within seconds of its start backs off instead of spinning
    if [ $((SECONDS - started)) -ge 10 ]; then delay=0.5; else delay=3; fi
    log "buildkitd exited; restarting in ${delay}s"
    sleep "$delay"
  done
  if [ -n "$metrics" ]; then kill -TERM "$metrics" 2>/dev/null || true; wait "$metrics" || true; fi
  rm -f "$SUPERVISOR_PID"
}

supervisor_running() { [ -s "$SUPERVISOR_PID" ] && kill -0 "$(cat "$SUPERVISOR_PID")" 2>/dev/null; }

start_daemon() {
  require_tls
  mkdir -p "$BKF_RUN_DIR"
  if use_systemd; then
    write_unit
    systemctl enable --now buildkitd.service >/dev/null
    if metrics_on; then systemctl start bkf-metrics.service; fi
  elif ! supervisor_running; then
    mkdir -p "$(dirname "$BKF_LOG_FILE")"
    # 9>&-: the supervisor must not hold the lifecycle lock (see lifecycle_lock)
    setsid "$BKF_INSTALL_DIR/bkf-node.sh" supervise </dev/null >>"$BKF_LOG_FILE" 2>&1 9>&- &
    local i
    for i in $(seq 50); do supervisor_running && break; sleep 0.1; [ "$i" != 50 ] || die "supervisor did not start"; done
  fi
}

# A buildkitd stopped with builds still running (past the drain, then killed when its graceful
# stop kept waiting for them) leaves their runc containers behind, orphaned: they keep running,
# keep the data volume busy (no unmount) and hold their cache mounts. runc's state dir is shared
# by the host, so only the containers whose bundles are in this daemon's state dir are touched.
reap_build_containers() {
  local runc b id
  runc=$(command -v buildkit-runc || command -v runc) || return 0
  for b in "$BKF_STATE_DIR"/runc-*/executor/*/; do
    [ -f "$b/config.json" ] || continue
    id=$(basename "$b")
    "$runc" state "$id" >/dev/null 2>&1 || continue
    log "removing build container $id, left running by a stopped or killed daemon"
    "$runc" delete --force "$id" >/dev/null 2>&1 || log "could not remove build container $id"
  done
  # and the root filesystems the daemon mounted for them (with no daemon running none is in use).
  # Only those: the network namespaces of its CNI pool stay mounted for the next daemon, which
  # tears them down through CNI (unmounted, their NAT rules and CNI-* chains would leak).
  local m
  while IFS= read -r m; do
    [ -n "$m" ] || continue
    log "unmounting $m, left by a stopped or killed daemon"
    umount "$m" || umount -l "$m" || log "could not unmount $m"
  done < <(findmnt -rn -o TARGET | awk -v d="$BKF_STATE_DIR/runc-" 'index($0, d) == 1 && /\/executor\//' | sort -r)
}

stop_daemon() {
  if use_systemd; then
    systemctl stop buildkitd.service 2>/dev/null || true
    reap_build_containers
    return 0
  fi
  supervisor_running || { reap_build_containers; return 0; }
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
    if [ -s "$METRICS_PIDS" ]; then
      # shellcheck disable=SC2046  # two pids, split on purpose
      kill -KILL $(cat "$METRICS_PIDS") 2>/dev/null || true
    fi
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$SUPERVISOR_PID" "$DAEMON_PID" "$METRICS_PIDS"
  reap_build_containers
  : "$i"
}

# Builds in flight on the daemon: 0 when it does not answer (nothing to wait for then).
builds_in_flight() {
  { buildctl --addr "unix://$SOCK" --timeout 10 debug histories \
      --format '{{if .Record.CompletedAt}}done{{else}}running{{end}}' 2>/dev/null || true; } |
    grep -c '^running' || true
}

# A restart or stop lets the builds in flight finish first, up to BKF_DRAIN_TIMEOUT seconds,
# instead of cutting them off (a cert rotation or config change is not a reason to fail CI jobs).
# The daemon keeps accepting builds meanwhile: the bound is on the whole wait, not per build.
drain() {
  local n start waited
  n=$(builds_in_flight)
  [ "$n" -gt 0 ] || return 0
  log "draining: $n build(s) in flight; waiting up to ${BKF_DRAIN_TIMEOUT}s before stopping buildkitd"
  start=$SECONDS
  while [ "$n" -gt 0 ] && [ $((SECONDS - start)) -lt "$BKF_DRAIN_TIMEOUT" ]; do
    sleep 1
    n=$(builds_in_flight)
  done
  waited=$((SECONDS - start))
  if [ "$n" -gt 0 ]; then
    log "drain: $n build(s) still running after ${waited}s (the limit); stopping buildkitd anyway"
  else
    log "drained in ${waited}s"
  fi
}

restart_daemon() {
  drain
  if use_systemd; then
    require_tls; write_unit; systemctl restart buildkitd.service
    # PartOf restarts a running endpoint with the daemon, but one just turned on was never started
    if metrics_on; then systemctl start bkf-metrics.service; fi
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
  # EC2 (see render_per_boot_hook): re-run the current user data on every boot.
  [ "$BKF_PER_BOOT_HOOK" = 1 ] && [ -d "$(dirname "$PER_BOOT_HOOK")" ] || return 0
  [ -s "$RENDERED_PER_BOOT_HOOK" ] || die "$RENDERED_PER_BOOT_HOOK is missing: the payload renders it"
  install -m 0755 "$RENDERED_PER_BOOT_HOOK" "$PER_BOOT_HOOK"
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
  sync_metrics
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
  metrics_unit_remove
  firewall_remove
  cni_remove
  unmount_state_leftovers
  rm -f "$PER_BOOT_HOOK"
  if [ "$purge" = 1 ]; then
    log "purging build state in $BKF_STATE_DIR"
    find "$BKF_STATE_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null || true
  fi
  if [ -n "$BKF_DATA_DEVICE" ] && mountpoint -q "$BKF_STATE_DIR"; then
    umount "$BKF_STATE_DIR" || log "could not unmount $BKF_STATE_DIR"
  fi
  # only a node whose install wrote an entry touches fstab (SSH hosts never do)
  if [ -f /etc/fstab ] && grep -q "[[:space:]]${BKF_STATE_DIR}[[:space:]]" /etc/fstab; then
    fstab_set ""
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

# One lifecycle command at a time on a host: an idle stop still waiting for the old daemon must
# not interleave with a start (it removed the new supervisor's pid file: "supervisor did not
# start"), nor a restart with an uninstall. The long-running supervisor and daemon never hold it.
lifecycle_lock() {
  local wait_s=$((BKF_DRAIN_TIMEOUT + BKF_STOP_TIMEOUT + 120))
  mkdir -p "$BKF_RUN_DIR"
  exec 9>>"$LIFECYCLE_LOCK"
  flock -w "$wait_s" 9 || die "another bkf-node.sh command held $LIFECYCLE_LOCK for over ${wait_s}s"
}

case "${1:-install}" in
  install) lifecycle_lock; cmd_install ;;
  certs) lifecycle_lock; cmd_certs ;;
  start) lifecycle_lock; start_daemon; check_daemon ;;
  stop) lifecycle_lock; drain; stop_daemon ;;
  restart) lifecycle_lock; restart_daemon; check_daemon ;;
  status) check_daemon ;;
  preflight) require_tls ;;
  run) run_daemon ;;
  supervise) supervise ;;
  metrics) run_metrics ;;
  uninstall) shift; lifecycle_lock; cmd_uninstall "$@" ;;
  *) die "usage: $0 install|certs|start|stop|restart|status|uninstall [--purge-state]" ;;
esac
