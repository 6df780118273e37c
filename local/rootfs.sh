#!/usr/bin/env bash
# Make rootfs-<arch>.tar (busybox-static from Debian, both architectures) in DIR,
# the base of the sample build: no registry is reachable from here.
#   local/rootfs.sh DIR
set -euo pipefail
dest=${1:?usage: rootfs.sh DIR}
cache=${BUILDKIT_FARM_CACHE:-$HOME/.cache/buildkit-farm}/debs
mkdir -p "$dest" "$cache"
# one at a time: the test lanes run side by side and each may be first to fetch a .deb into the
# shared cache (or to add the foreign architecture and apt-get update, which holds apt's lock)
exec 9>"$cache/.rootfs.lock"
flock 9
for arch in amd64 arm64; do
  out="$dest/rootfs-$arch.tar"
  [ -s "$out" ] && continue
  deb=$(find "$cache" -name "busybox-static_*_$arch.deb" | head -n1)
  if [ -z "$deb" ]; then
    if [ "$arch" != "$(dpkg --print-architecture)" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
      dpkg --add-architecture "$arch"
      apt-get update -qq
    fi
    # (apt warns that root downloads unsandboxed into a root-owned dir: expected here)
    if ! (cd "$cache" && apt-get download -qq "busybox-static:$arch" 2>"$cache/apt.err"); then
      cat "$cache/apt.err" >&2; exit 1
    fi
    deb=$(find "$cache" -name "busybox-static_*_$arch.deb" | head -n1)
  fi
  tmp=$(mktemp -d)
  dpkg-deb -x "$deb" "$tmp/x"
  mkdir -p "$tmp/root/bin" "$tmp/root/tmp" "$tmp/root/var/cache"
  cp "$tmp/x/bin/busybox" "$tmp/root/bin/busybox"
  for applet in sh cat echo uname mkdir ls wc true nc wget sleep grep; do ln -s busybox "$tmp/root/bin/$applet"; done
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$out.tmp" -C "$tmp/root" .
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
done
