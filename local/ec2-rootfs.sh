#!/usr/bin/env bash
# The EC2 node tier's instance image (tests/ec2): a Debian bookworm rootfs that boots systemd as
# PID 1 in systemd-nspawn, with cloud-init (NoCloud: /var/lib/cloud/seed/nocloud/), what bkf-node.sh
# needs on a node (iproute2, iptables, curl, e2fsprogs, util-linux, runc, CNI plugins) and the
# AWS CLI from PyPI (tests/ec2/requirements-node.txt: every package pinned and hashed; Amazon Linux
# ships the CLI too).
#
# Cached under $BUILDKIT_FARM_CACHE (default ~/.cache/buildkit-farm)/ec2-rootfs-<key>/rootfs, the key a hash
# of the suite, the package list, RECIPE and the CLI's requirements: any change makes a new image
# (cold: debootstrap from the Debian mirror). Older images are removed after a successful build.
# Tests boot it through an overlay, so the cached tree is never written.
#   local/ec2-rootfs.sh        build when missing; print the rootfs directory
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${BUILDKIT_FARM_CACHE:-$HOME/.cache/buildkit-farm}
MIRROR=${BKF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# bump when the steps below change what the image holds
RECIPE=2
# python3-cffi-backend: cloud-init needs it through a virtual package debootstrap does not resolve
PACKAGES=systemd,systemd-sysv,dbus,cloud-init,python3-cffi-backend,iproute2,iptables,curl,e2fsprogs,util-linux,ca-certificates,runc,containernetworking-plugins,procps,gzip
REQS=$ROOT/tests/ec2/requirements-node.txt
PYTHON=${PYTHON:-python3}

log() { printf 'ec2-rootfs: %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root (debootstrap)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap missing: run toolchain/bootstrap.sh"; exit 1; }

key=$(printf '%s\n' "$SUITE" "$PACKAGES" "recipe=$RECIPE" "$(cat "$REQS")" | sha256sum | cut -c1-16)
dir=$CACHE/ec2-rootfs-$key
mkdir -p "$CACHE"
exec 9>"$CACHE/ec2-rootfs.lock"
flock 9
if [ -f "$dir/.complete" ]; then
  echo "$dir/rootfs"
  exit 0
fi

t0=$(date +%s)
rm -rf "$dir"
mkdir -p "$dir"
tmp=$dir/rootfs.tmp
log "building $dir (debootstrap $SUITE from $MIRROR)"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$MIRROR" >"$dir/debootstrap.log" 2>&1; then
  tail -n 30 "$dir/debootstrap.log" >&2
  log "debootstrap failed (log: $dir/debootstrap.log)"
  exit 1
fi
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*

# The AWS CLI, as bkf-node.sh calls it (`aws ssm get-parameter ...`).
# --require-hashes: a wheel whose sha256 is not in the lock fails the image
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$PYTHON" -m pip install -q --require-hashes --no-deps --only-binary=:all: \
  --target "$tmp/opt/awscli" -r "$REQS"
cat >"$tmp/usr/local/bin/aws" <<'EOF'
#!/bin/sh
# AWS CLI v1 from PyPI (tests/ec2/requirements-node.txt)
PYTHONPATH=/opt/awscli exec /usr/bin/python3 -m awscli "$@"
EOF
chmod 0755 "$tmp/usr/local/bin/aws"

# cloud-init: the NoCloud seed only (no network datasources to probe), no network or locale
# configuration (the test sets the container's address before boot), no SSH host keys (no sshd).
# (`locale: false` disables the locale module; cloud-init's schema check warns that it is not a
# string, and the boot log shows "Invalid cloud-config provided": harmless.)
cat >"$tmp/etc/cloud/cloud.cfg.d/90-bkf-ec2-tier.cfg" <<'EOF'
# buildkit-farm EC2 node tier: user data from /var/lib/cloud/seed/nocloud/ only
datasource_list: [NoCloud, None]
network: {config: disabled}
locale: false
resize_rootfs: false
growpart: {mode: "off"}
ssh_genkeytypes: []
ssh_deletekeys: false
EOF
echo bkf-ec2-node >"$tmp/etc/hostname"
: >"$tmp/etc/machine-id"
# A container has no consoles to spawn logins on.
ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
ln -sf /dev/null "$tmp/etc/systemd/system/getty@.service"

mv "$tmp" "$dir/rootfs"
printf 'suite=%s\npackages=%s\nrecipe=%s\nbuilt=%s\nseconds=%s\n' "$SUITE" "$PACKAGES" "$RECIPE" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(($(date +%s) - t0))" >"$dir/.complete"
for old in "$CACHE"/ec2-rootfs-*; do
  [ "$old" = "$dir" ] || [ ! -d "$old" ] || rm -rf "$old"
done
log "built in $(($(date +%s) - t0))s"
echo "$dir/rootfs"
