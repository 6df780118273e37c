"""Stand-in binaries the unit tier puts on PATH in place of real cloud CLIs."""

from __future__ import annotations

from pathlib import Path


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
