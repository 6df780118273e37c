"""The Python locks: every package of every venv the bootstrap makes is pinned with its hashes, the
locks match their hand-edited inputs, and the bootstrap's install refuses what the lock does not
vouch for (toolchain/lib/common.sh pip_install_locked; docs/toolchain.md, "Pins and hashes")."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pins import lock_problems, parse_lock, parse_pins, subset_problems

ROOT = Path(__file__).resolve().parents[2]


def lock_pairs() -> list[tuple[str, str]]:
    """The input -> lock pairs toolchain/lock.sh regenerates (its PY_LOCKS list)."""
    text = (ROOT / "toolchain/lock.sh").read_text()
    block = re.search(r"^PY_LOCKS=\(\n(.*?)^\)", text, re.M | re.S)
    assert block, "no PY_LOCKS=( ... ) in toolchain/lock.sh"
    pairs = [line.strip().split(":") for line in block[1].splitlines() if line.strip()]
    return [(i, lock) for i, lock in pairs]


def test_every_requirements_input_in_the_repository_is_locked_by_lock_sh() -> None:
    tracked = subprocess.run(["git", "ls-files", "*.in"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert sorted(tracked) == sorted(i for i, _ in lock_pairs())
    for i, lock in lock_pairs():
        assert lock == i.removesuffix(".in") + ".txt"


@pytest.mark.parametrize(("src", "lock"), lock_pairs())
def test_each_lock_pins_every_package_with_hashes_at_the_inputs_versions(src: str, lock: str) -> None:
    lock_text = (ROOT / lock).read_text()
    assert lock_problems((ROOT / src).read_text(), lock_text) == []
    assert "toolchain/lock.sh python" in lock_text.splitlines()[1]  # how to regenerate it
    packages, _ = parse_lock(lock_text)
    assert len(packages) >= len(parse_pins((ROOT / src).read_text()))


def test_the_dev_lock_holds_the_runtime_lock_unchanged() -> None:
    # .venv is made from requirements-dev.txt alone; `pulumi install` and CI use requirements.txt
    assert subset_problems((ROOT / "requirements.txt").read_text(), (ROOT / "requirements-dev.txt").read_text()) == []


def test_lock_problems_name_what_pip_would_refuse_and_what_drifted() -> None:
    lock = "a==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\nb==2.0\nc>=3\n"
    assert lock_problems("a==1.1\nd==4\n", lock) == [
        "b==2.0: no sha256 hash",
        "not an exact pin: c>=3",
        "a is pinned ==1.1 in the input but locked at 1.0",
        "d==4 is pinned in the input but missing from the lock",
    ]
    assert lock_problems("-r other.in\n# note\nA==1.0  # why\n", lock.split("b==")[0]) == []


# --- the install refuses what the lock does not vouch for -------------------------------------------


def make_wheel(where: Path, body: str) -> Path:
    """A minimal pure-Python wheel of bkf-locktest 1.0 (no build tool needed: offline, fast)."""
    files = {
        "bkf_locktest.py": body,
        "bkf_locktest-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: bkf-locktest\nVersion: 1.0\n",
        "bkf_locktest-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                            "Tag: py3-none-any\n",
    }
    record = []
    for name, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(content.encode())}")
    record.append("bkf_locktest-1.0.dist-info/RECORD,,")
    files["bkf_locktest-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    wheel = where / "bkf_locktest-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return wheel


def install_locked(tmp_path: Path, lock_text: str) -> subprocess.CompletedProcess[str]:
    """The bootstrap's pip_install_locked, from a local index of one wheel, into a target dir."""
    lock = tmp_path / "lock.txt"
    lock.write_text(lock_text)
    target = tmp_path / "target"
    script = 'source toolchain/lib/common.sh; pip_install_locked "$@"'
    return subprocess.run(["bash", "-c", script, "install", sys.executable, str(lock), "--no-index",
                           "--find-links", str(tmp_path / "index"), "--target", str(target)],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)


def test_the_install_takes_a_wheel_whose_hash_is_the_locked_one(tmp_path: Path) -> None:
    (tmp_path / "index").mkdir()
    wheel = make_wheel(tmp_path / "index", "VALUE = 1\n")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    r = install_locked(tmp_path, f"bkf-locktest==1.0 --hash=sha256:{digest}\n")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "target/bkf_locktest.py").read_text() == "VALUE = 1\n"


def test_a_changed_artifact_under_the_same_version_fails_the_install(tmp_path: Path) -> None:
    (tmp_path / "index").mkdir()
    locked = hashlib.sha256(make_wheel(tmp_path / "index", "VALUE = 1\n").read_bytes()).hexdigest()
    make_wheel(tmp_path / "index", "VALUE = 2  # changed upstream\n")  # same name and version
    r = install_locked(tmp_path, f"bkf-locktest==1.0 --hash=sha256:{locked}\n")
    assert r.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in r.stderr
    assert not (tmp_path / "target/bkf_locktest.py").exists()


def test_a_lock_entry_without_a_hash_is_refused(tmp_path: Path) -> None:
    # --require-hashes: without it pip would install an unhashed entry (a lock edited by hand)
    (tmp_path / "index").mkdir()
    make_wheel(tmp_path / "index", "VALUE = 1\n")
    r = install_locked(tmp_path, "bkf-locktest==1.0\n")
    assert r.returncode != 0
    assert "Hashes are required in --require-hashes mode" in r.stderr
    assert not (tmp_path / "target/bkf_locktest.py").exists()
