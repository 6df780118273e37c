#!/usr/bin/env bash
# Test hosts on this machine for the local farm: each host is a network namespace
# with its own address and sshd, and a private mount namespace whose buildkit
# paths (/etc/buildkit, /opt/buildkit-farm, /var/lib/buildkit, ...) are its own.
# Each host gets a loop-device "data volume" (a sparse file), so the bootstrap
# script formats it when blank and mounts it by UUID, as on a real host.
#
#   local/testhosts.sh up      create (idempotent) and start sshd on every host
#   local/testhosts.sh down    stop everything in the hosts, remove namespaces and
#                              loop devices; data images stay (the cache survives)
#   local/testhosts.sh purge   down + delete the data images and keys
#   local/testhosts.sh status
#   local/testhosts.sh binfmt  only register QEMU's arm64 emulation (binfmt_misc, F flag), as up does:
#                              for a foreign platform's RUN steps elsewhere (the k8s tier's pods)
#
# BKF_TESTHOSTS_NO_SFTP: hosts (of this set) whose sshd has no sftp subsystem, as some hardened
# servers are configured (the SFTP check before an artifact copy is tested on one).
# Addresses: bridge bkf-br0 10.77.0.1/24 in the root namespace; host hN is
# 10.77.0.(10+N). Only these addresses are ever dialled.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${BKF_LOCAL_STATE:-$ROOT/.state/local}
HOSTS=${BKF_TEST_HOSTS:-"h1 h2 h16"}
DATA_GB=${BKF_TEST_DATA_GB:-20}
BRIDGE=bkf-br0
SUBNET_PREFIX=10.77.0
RUN=/run/bkf-testhosts
# Paths bkf-node.sh writes to: private per host.
# /var/lib/buildkit is not here: bkf-node.sh mounts the host's data device on it.
PRIVATE_PATHS="/etc/buildkit /etc/buildkit-farm /opt/buildkit-farm /run/buildkit /var/log/buildkit-farm /var/lib/cni"
# Files private per host (a bind mount of the host's own copy): /etc/fstab, so that a node's
# install/uninstall never edits this machine's fstab and two hosts never race on one file.
# (A bind-mounted file cannot be replaced by rename: an fstab writer there fails loudly, EBUSY.)
PRIVATE_FILES="/etc/fstab"

log() { printf 'testhosts: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, loop devices)"

index() { echo "${1#h}"; }
addr() { echo "$SUBNET_PREFIX.$((10 + $(index "$1")))"; }
ns() { echo "bkf-$1"; }
hdir() { echo "$STATE/hosts/$1"; }

ensure_binfmt() {
  # RUN steps of the arm64 node run under QEMU user emulation on this x86 machine.
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ "$(uname -m)" = x86_64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 || die "cannot register qemu-aarch64 (install qemu-user-static binfmt-support)"
  fi
  if [ "$(uname -m)" = x86_64 ]; then
    grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
      die "qemu-aarch64 is registered without the F flag; containers cannot use it"
  fi
}

ensure_key() {
  mkdir -p "$STATE/ssh"
  chmod 700 "$STATE/ssh"
  [ -f "$STATE/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C bkf-local -f "$STATE/ssh/id_ed25519"
}

ensure_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET_PREFIX.1/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
}

ensure_data_device() {
  local h=$1 d img dev link
  d=$(hdir "$h"); img="$d/data.img"; link="$RUN/$h/data-device"
  mkdir -p "$RUN/$h"
  [ -f "$img" ] || truncate -s "${DATA_GB}G" "$img"
  dev=$(losetup -j "$img" | cut -d: -f1 | head -n1)
  [ -n "$dev" ] || dev=$(losetup -f --show "$img")
  # the stable path the stack config names (like /dev/disk/by-id on a real host)
  ln -sfn "$dev" "$link"
}

sshd_pid() { cat "$(hdir "$1")/sshd.pid" 2>/dev/null || true; }

# A host name is one machine-wide namespace and /run/bkf-testhosts/<h>: one state dir owns it at a
# time. Taking over another farm's host would repoint its data device under its running daemon.
other_owner() {
  # prints the state dir that owns host $1 when it is not ours and the host is up
  local owner="$RUN/$1/owner"
  if [ -s "$owner" ] && [ "$(cat "$owner")" != "$STATE" ] && ip netns list | grep -qw "$(ns "$1")"; then
    cat "$owner"
  fi
}

claim() {
  local h=$1 other
  other=$(other_owner "$h")
  [ -z "$other" ] || die "$h is in use by the test hosts of $other; bring those down or use other names (BKF_TEST_HOSTS)"
  mkdir -p "$RUN/$h"
  echo "$STATE" >"$RUN/$h/owner"
}

host_up() {
  local h=$1 n d a
  n=$(ns "$h"); d=$(hdir "$h"); a=$(addr "$h")
  claim "$h"
  mkdir -p "$d"
  if ! ip netns list | grep -qw "$n"; then
    ip netns add "$n"
    ip link add "$n-r" type veth peer name eth0 netns "$n"
    ip link set "$n-r" master "$BRIDGE" up
    ip -n "$n" addr add "$a/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
    ip -n "$n" route add default via "$SUBNET_PREFIX.1"
  fi
  ensure_data_device "$h"
  [ -f "$d/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/ssh_host_ed25519_key"
  cp "$STATE/ssh/id_ed25519.pub" "$d/authorized_keys"
  chmod 600 "$d/authorized_keys"
  cat >"$d/sshd_config" <<EOF
ListenAddress $a
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
  case " ${BKF_TESTHOSTS_NO_SFTP:-} " in
    *" $h "*) ;;
    *) echo "Subsystem sftp internal-sftp" >>"$d/sshd_config" ;;
  esac
  local pid
  pid=$(sshd_pid "$h")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "$h: sshd already running ($a)"
    return 0
  fi
  mkdir -p /run/sshd
  local binds="" p
  for p in $PRIVATE_PATHS; do
    mkdir -p "$p" "$d/fs$p"
    binds+="mount --bind '$d/fs$p' '$p'; "
  done
  for p in $PRIVATE_FILES; do
    mkdir -p "$d/fs$(dirname "$p")"
    [ -f "$d/fs$p" ] || printf '# %s of test host %s (private to it: local/testhosts.sh)\n' "$p" "$h" >"$d/fs$p"
    binds+="mount --bind '$d/fs$p' '$p'; "
  done
  # sshd and everything it starts (bkf-node.sh, buildkitd) live in this host's
  # network namespace and private mount namespace.
  # nsenter rather than `ip netns exec`: the latter remounts /sys, hiding the
  # cgroup hierarchy runc needs.
  setsid nsenter --net="/run/netns/$n" unshare --mount --propagation private -- \
    bash -c "set -e; mount --make-rprivate /; $binds exec /usr/sbin/sshd -D -f '$d/sshd_config' -E '$d/sshd.log'" \
    </dev/null >>"$d/sshd.log" 2>&1 &
  local _
  for _ in $(seq 100); do
    if ssh_host "$h" true 2>/dev/null; then log "$h: up at $a"; return 0; fi
    sleep 0.2
  done
  cat "$d/sshd.log" >&2
  die "$h: sshd did not come up on $a"
}

ssh_host() {
  local h=$1; shift
  ssh -i "$STATE/ssh/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=3 "root@$(addr "$h")" "$@"
}

host_down() {
  local h=$1 n d pids img dev other
  n=$(ns "$h"); d=$(hdir "$h")
  other=$(other_owner "$h")
  if [ -n "$other" ]; then
    log "$h belongs to the test hosts of $other: left alone"
    return 0
  fi
  if ip netns list | grep -qw "$n"; then
    # everything that runs in the host: sshd, bkf-node.sh's supervisor, buildkitd, build steps
    for sig in TERM KILL; do
      pids=$(ip netns pids "$n" || true)
      [ -n "$pids" ] || break
      # shellcheck disable=SC2086
      kill -"$sig" $pids 2>/dev/null || true
      for _ in $(seq 50); do [ -z "$(ip netns pids "$n")" ] && break; sleep 0.1; done
    done
    ip netns del "$n"
  fi
  ip link del "$n-r" 2>/dev/null || true
  rm -f "$d/sshd.pid"
  img="$d/data.img"
  if [ -f "$img" ]; then
    for dev in $(losetup -j "$img" | cut -d: -f1); do losetup -d "$dev" || log "$h: $dev still busy"; done
  fi
  rm -rf "${RUN:?}/$h"
}

cmd_up() {
  ensure_binfmt
  ensure_key
  ensure_bridge
  local h
  for h in $HOSTS; do host_up "$h"; done
}

cmd_down() {
  local h
  for h in $HOSTS; do host_down "$h"; done
  # the bridge is shared with other host sets (tests use their own): last one out removes it
  if ! ip netns list | grep -q '^bkf-'; then
    ip link del "$BRIDGE" 2>/dev/null || true
    rmdir "$RUN" 2>/dev/null || true
  fi
}

cmd_status() {
  local h
  for h in $HOSTS; do
    if ssh_host "$h" true 2>/dev/null; then echo "$h $(addr "$h") up"; else echo "$h $(addr "$h") down"; fi
  done
}

# Host sets of several farms or tests share the bridge and /run/bkf-testhosts: one up or down at a
# time, so one run's "last one out removes the bridge" never pulls it from under another's set-up
# (seen: RTNETLINK "File exists" and a vanished bridge with two runs at once).
serialized() {
  mkdir -p "$RUN"
  exec 9>"$RUN.lock"
  flock 9
  "$@"
}

case "${1:-}" in
  up) serialized cmd_up ;;
  down) serialized cmd_down ;;
  purge) serialized cmd_down; rm -rf "$STATE/hosts" "$STATE/ssh" ;;
  status) cmd_status ;;
  ssh) shift; ssh_host "$@" ;;
  binfmt) serialized ensure_binfmt ;;
  *) die "usage: $0 up|down|purge|status|binfmt|ssh HOST CMD..." ;;
esac
