"""Stand-in binaries the unit tier puts on PATH in place of real cloud CLIs."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path


def fake_ec2(tmp: Path, ids: Mapping[str, str], stopped: Collection[str]) -> tuple[Path, Path]:
    """<tmp>/bin with a fake `aws` in it, and <tmp>/state holding each node's instance state
    (`ids`: node -> instance id; the `stopped` nodes start stopped, the others running)."""
    state, bin_dir = tmp / "state", tmp / "bin"
    state.mkdir()
    bin_dir.mkdir()
    for node, iid in ids.items():
        (state / iid).write_text("stopped" if node in stopped else "running")
    fake_aws(bin_dir, tmp, state)
    return bin_dir, state


def fake_aws(bin_dir: Path, log_dir: Path, state_dir: Path) -> Path:
    """An `aws` that logs its arguments to <log_dir>/aws.log and keeps each EC2 instance's state in
    <state_dir>/<instance id> ("stopped", "running"): describe-instances prints `id state` lines,
    start-instances sets them running, `ec2 wait` returns at once."""
    aws = bin_dir / "aws"
    aws.write_text(f"""#!/bin/bash
echo "$*" >> {log_dir}/aws.log
ids=(); grab=0; for a in "$@"; do
  case $a in --instance-ids) grab=1;; --*) grab=0;; *) [ $grab = 1 ] && ids+=("$a");; esac; done
case "$2" in
  describe-instances) for i in "${{ids[@]}}"; do echo "$i $(cat {state_dir}/$i)"; done;;
  start-instances) for i in "${{ids[@]}}"; do echo running > {state_dir}/$i; done;;
  wait) ;;
esac
""")
    aws.chmod(0o755)
    return aws
