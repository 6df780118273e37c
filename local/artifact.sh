#!/usr/bin/env bash
# Package this machine's buildkitd and buildctl like a BuildKit release tarball
# (bin/buildkitd, bin/buildctl), for hosts that cannot download the release.
# Deterministic (sorted, mtime 0, gzip -n): the same binaries give the same
# sha256, so an unchanged stack previews with no changes.
#   local/artifact.sh DIR VERSION  ->  DIR/buildkit-VERSION.linux-<arch>.tar.gz
# VERSION is the program's pin (components/versions.py); the caller passes it.
set -euo pipefail
dest=${1:?usage: artifact.sh DIR VERSION}
version=${2:?usage: artifact.sh DIR VERSION}
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "unsupported arch" >&2; exit 1 ;; esac
out="$dest/buildkit-$version.linux-$arch.tar.gz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$dest"
for b in buildkitd buildctl; do
  src=$(command -v "$b") || { echo "$b not on PATH: run toolchain/bootstrap.sh" >&2; exit 1; }
  cp "$(readlink -f "$src")" "$tmp/bin/$b"
done
"$tmp/bin/buildkitd" --version | grep -q -- "$version" || { echo "buildkitd is not $version" >&2; exit 1; }
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$tmp" -cf - bin | gzip -n -1 >"$tmp/out.tar.gz"
if ! cmp -s "$tmp/out.tar.gz" "$out"; then mv "$tmp/out.tar.gz" "$out"; fi
echo "$out"
