#!/usr/bin/env python3
"""Pack a root file system into a one-layer OCI image layout tarball that `ctr images import` takes.

    mkoci.py ROOTFS OUT.tar CONFIG_JSON NAME...

CONFIG_JSON holds the image config's Entrypoint/Cmd/User/Env/WorkingDir. Every NAME becomes an
image record pointing at the same manifest; a NAME ending in "@" gets the manifest digest appended,
so that a `name:tag@sha256:...` reference (what the Kubernetes stack's config pins) resolves in
containerd's CRI without a pull. Prints the manifest digest. Deterministic: mtimes are zeroed and
entries sorted, so the same files give the same digest. No registry, no network.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from typing import Any


def _norm(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.mtime = 0
    ti.uname = ti.gname = ""
    return ti


def layer_tar(rootfs: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for n in sorted(dirnames + filenames):
                p = os.path.join(dirpath, n)
                t.add(p, arcname=os.path.relpath(p, rootfs), recursive=False, filter=_norm)
    return buf.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add(t: tarfile.TarFile, arcname: str, data: bytes) -> None:
    ti = tarfile.TarInfo(arcname)
    ti.size, ti.mode = len(data), 0o644
    t.addfile(ti, io.BytesIO(data))


def main(rootfs: str, out: str, config_json: str, names: list[str]) -> str:
    cfg: dict[str, Any] = json.loads(config_json)
    layer = layer_tar(rootfs)
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
        | {k: cfg[k] for k in ("Entrypoint", "Cmd", "User", "Env", "WorkingDir") if k in cfg},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
        "history": [{"created_by": "local/k8s/mkoci.py"}],
    }
    config_b = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config_b),
                   "size": len(config_b)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer),
                    "size": len(layer)}],
    }
    manifest_b = json.dumps(manifest, sort_keys=True).encode()
    md = digest(manifest_b)
    entries = [{"mediaType": manifest["mediaType"], "digest": md, "size": len(manifest_b),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": n + md if n.endswith("@") else n}}
               for n in names]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    with tarfile.open(out, "w") as t:
        _add(t, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(t, "index.json", json.dumps(index).encode())
        for d, b in ((digest(layer), layer), (digest(config_b), config_b), (md, manifest_b)):
            _add(t, "blobs/sha256/" + d.split(":", 1)[1], b)
    return md


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    print(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
