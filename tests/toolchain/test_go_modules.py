"""The Go wrapper modules: each binary's module versions and their hashes are committed
(toolchain/modules/<name>/go.mod + go.sum, lib/gomodules.sh), agree with versions.env, and a build
refuses a module whose content is not the one go.sum vouches for (docs/toolchain.md, "Pins and
hashes"). The refusal tests run the real actionlint recipe (the smallest module) offline, from the
bootstrap's module and build caches."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from pins import gomod_requires, sum_coverage_problems

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "toolchain/modules"
CACHE = Path(os.environ.get("BUILDKIT_FARM_CACHE", Path.home() / ".cache/buildkit-farm"))
GO = os.environ.get("GO") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else shutil.which("go"))
ACTIONLINT = "github.com/rhysd/actionlint"

needs_go = pytest.mark.skipif(not GO, reason="no go binary (toolchain/bootstrap.sh needs one too)")


def declared_wrappers() -> list[str]:
    # the go_wrapper declarations of the steps, sourced the way bootstrap.sh sources them
    script = ('REPO_ROOT=$PWD; source toolchain/versions.env; source toolchain/lib/gomodules.sh; '
              'for f in toolchain/steps/*.sh; do source "$f"; done; printf "%s\\n" "${WRAPPERS[@]}"')
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.split()


def versions_env(root: Path = ROOT) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", (root / "toolchain/versions.env").read_text(), re.M))


def test_every_wrapper_a_step_builds_from_is_committed() -> None:
    assert sorted(declared_wrappers()) == sorted(p.name for p in MODULES.iterdir())
    assert sorted(declared_wrappers()) == sorted([
        "buildkit", "buildx", "pulumi", "pulumi-language-python", "registry", "actionlint", "etcd", "containerd",
        "rootlesskit", "kubernetes", "pulumi-kubernetes"])


@pytest.mark.parametrize("name", sorted(p.name for p in MODULES.iterdir()))
def test_go_sum_holds_the_hashes_of_every_required_module(name: str) -> None:
    gomod = (MODULES / name / "go.mod").read_text()
    assert gomod_requires(gomod)
    assert sum_coverage_problems(gomod, (MODULES / name / "go.sum").read_text()) == []


def test_sum_coverage_follows_replace_directives() -> None:
    gomod = "module w\n\nrequire (\n\ta v1.0.0\n\tb v0.0.0 // indirect\n)\n\nreplace b => c v2.0.0\n"
    full = "a v1.0.0 h1:x=\na v1.0.0/go.mod h1:y=\nc v2.0.0 h1:z=\nc v2.0.0/go.mod h1:w=\n"
    assert sum_coverage_problems(gomod, full) == []
    assert sum_coverage_problems(gomod, full.replace("c v2.0.0 h1:z=\n", "")) == ["b v0.0.0 => c v2.0.0"]
    assert sum_coverage_problems(gomod, full.replace("a v1.0.0/go.mod h1:y=\n", "")) == ["a v1.0.0"]


def test_the_committed_versions_are_versions_envs() -> None:
    # independent of the bash check below: the module of each step at the version versions.env names
    env = versions_env()
    wanted = {
        "buildkit": ("github.com/moby/buildkit", env["BUILDKIT_VERSION"]),
        "buildx": ("github.com/docker/buildx", env["BUILDX_VERSION"]),
        "pulumi": ("github.com/pulumi/pulumi/pkg/v3", "v" + env["PULUMI_VERSION"]),
        "pulumi-language-python": ("github.com/pulumi/pulumi/sdk/v3", "v" + env["PULUMI_LANGUAGE_PYTHON_VERSION"]),
        "registry": ("github.com/distribution/distribution/v3", env["REGISTRY_VERSION"]),
        "actionlint": (ACTIONLINT, env["ACTIONLINT_VERSION"]),
        "etcd": ("go.etcd.io/etcd/server/v3", env["ETCD_VERSION"]),
        "containerd": ("github.com/containerd/containerd/v2", env["CONTAINERD_VERSION"]),
        "rootlesskit": ("github.com/rootless-containers/rootlesskit/v2", env["ROOTLESSKIT_VERSION"]),
        "kubernetes": ("k8s.io/kubernetes", env["KUBERNETES_VERSION"]),
    }
    for name, (module, version) in wanted.items():
        assert gomod_requires((MODULES / name / "go.mod").read_text()).get(module) == version, name
    # the CLI's wrapper also takes sdk/v3 at the CLI's version (pkg/v3 replaces it with a local path)
    assert gomod_requires((MODULES / "pulumi/go.mod").read_text())["github.com/pulumi/pulumi/sdk/v3"] == \
        "v" + env["PULUMI_VERSION"]


def copy_toolchain(tmp_path: Path) -> Path:
    """A scratch checkout holding only toolchain/ (bootstrap.sh finds everything next to itself)."""
    shutil.copytree(ROOT / "toolchain", tmp_path / "repo/toolchain",
                    ignore=shutil.ignore_patterns("__pycache__", "providers"))
    return tmp_path / "repo"


def bootstrap(repo: Path, *args: str, env: dict[str, str] | None = None,
              timeout: int = 900) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "GO": GO or "go", **(env or {})}
    return subprocess.run(["bash", str(repo / "toolchain/bootstrap.sh"), *args], cwd=repo, capture_output=True,
                          text=True, check=False, timeout=timeout, env=full)


@needs_go
def test_the_bootstrap_check_passes_on_the_committed_modules() -> None:
    r = bootstrap(ROOT, "__check_go")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


@needs_go
def test_a_version_bumped_without_relocking_is_refused_before_any_build(tmp_path: Path) -> None:
    repo = copy_toolchain(tmp_path)
    env_file = repo / "toolchain/versions.env"
    env_file.write_text(env_file.read_text().replace("ACTIONLINT_VERSION=v1.7.12", "ACTIONLINT_VERSION=v1.7.13"))
    message = (f"toolchain/modules/actionlint/go.mod requires {ACTIONLINT} v1.7.12, versions.env asks for v1.7.13; "
               "run toolchain/lock.sh go actionlint")
    r = bootstrap(repo, "__check_go", "actionlint")
    assert (r.returncode, r.stdout.strip()) == (1, message)
    # the recipe itself refuses it: a v1.7.12 binary would be cached as actionlint-v1.7.13
    r = bootstrap(repo, "__build", "build_actionlint", env={"OUT": str(tmp_path / "out"), "GOPROXY": "off"})
    assert r.returncode != 0
    assert r.stderr.strip() == message
    assert not (tmp_path / "out/actionlint").exists()


@needs_go
def test_a_go_sum_without_the_required_modules_hash_is_refused(tmp_path: Path) -> None:
    repo = copy_toolchain(tmp_path)
    gosum = repo / "toolchain/modules/actionlint/go.sum"
    gosum.write_text("".join(line for line in gosum.read_text().splitlines(keepends=True)
                             if not line.startswith(f"{ACTIONLINT} v1.7.12 h1:")))
    r = bootstrap(repo, "__check_go", "actionlint")
    message = (f"toolchain/modules/actionlint/go.sum has no hash of {ACTIONLINT} v1.7.12; "
               "run toolchain/lock.sh go actionlint")
    assert (r.returncode, r.stdout.strip()) == (1, message)


def offline(tmp_path: Path) -> dict[str, str]:
    """The recipe, offline (GOPROXY=off), from the bootstrap's caches; skips if they lack actionlint."""
    if not (CACHE / f"go/mod/cache/download/{ACTIONLINT}/@v/v1.7.12.zip").exists():
        pytest.skip(f"{ACTIONLINT} is not in the module cache yet (toolchain/bootstrap.sh test downloads it)")
    (tmp_path / "out").mkdir(exist_ok=True)
    return {"OUT": str(tmp_path / "out"), "GOPROXY": "off", "BUILDKIT_FARM_CACHE": str(CACHE)}


@needs_go
def test_the_actionlint_recipe_builds_from_the_committed_module_offline(tmp_path: Path) -> None:
    r = bootstrap(ROOT, "__build", "build_actionlint", env=offline(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    built = tmp_path / "out/actionlint"
    version = subprocess.run([str(built), "-version"], capture_output=True, text=True, check=True).stdout
    assert version.splitlines()[0] == "v1.7.12"
    cached = CACHE / "actionlint-v1.7.12/actionlint"
    goversion = subprocess.run([GO or "go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout
    recipe = re.search(r'stamp="\$modver \$gov (recipe=\d+)"', (ROOT / "toolchain/lib/gobuild.sh").read_text())
    assert recipe
    stamp = CACHE / "actionlint-v1.7.12/.stamp"
    if cached.exists() and stamp.read_text().split() == [f"{ACTIONLINT}@v1.7.12", goversion.strip(), recipe[1]]:
        # the binary the bootstrap cached with this Go and recipe (built before the lock, or from it):
        # the same module versions give the same bytes
        same = hashlib.sha256(built.read_bytes()).digest() == hashlib.sha256(cached.read_bytes()).digest()
        print(f"built actionlint identical to the cached {cached}: {same}")
        assert same


@needs_go
def test_a_go_sum_that_does_not_match_the_module_fails_the_build(tmp_path: Path) -> None:
    env = offline(tmp_path)
    repo = copy_toolchain(tmp_path)
    gosum = repo / "toolchain/modules/actionlint/go.sum"
    line = re.search(rf"^{re.escape(ACTIONLINT)} v1\.7\.12 h1:(\S+)$", gosum.read_text(), re.M)
    assert line
    wrong = "h1:" + "A" * 43 + "="
    gosum.write_text(gosum.read_text().replace("h1:" + line[1], wrong))
    r = bootstrap(repo, "__build", "build_actionlint", env=env)
    assert r.returncode != 0
    assert f"verifying {ACTIONLINT}@v1.7.12: checksum mismatch" in r.stderr, r.stderr
    assert "SECURITY ERROR" in r.stderr
    assert not (tmp_path / "out/actionlint").exists()


def changed_zip(original: bytes) -> bytes:
    """The module zip with one file's content changed: what a re-tagged or tampered release serves."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/cmd/actionlint/main.go"):
                data += b"\n// changed upstream\n"
            dst.writestr(info, data)
    return out.getvalue()


@needs_go
def test_a_changed_upstream_module_fails_the_build(tmp_path: Path) -> None:
    env = offline(tmp_path)
    download = CACHE / "go/mod/cache/download"
    # a proxy that serves a changed actionlint v1.7.12 and nothing else; every other module comes
    # from the bootstrap's download cache (a proxy layout); an empty module cache, as on a new machine
    evil = tmp_path / f"proxy/{ACTIONLINT}/@v"
    evil.mkdir(parents=True)
    for suffix in (".info", ".mod"):
        shutil.copy(download / f"{ACTIONLINT}/@v/v1.7.12{suffix}", evil)
    (evil / "list").write_text("v1.7.12\n")
    (evil / "v1.7.12.zip").write_bytes(changed_zip((download / f"{ACTIONLINT}/@v/v1.7.12.zip").read_bytes()))
    cache = tmp_path / "cache"
    (cache / "go").mkdir(parents=True)
    # the build cache is the bootstrap's (nothing is compiled: the download fails first)
    (cache / "go/build").symlink_to(CACHE / "go/build")
    env.update({"GOPROXY": f"file://{tmp_path / 'proxy'},file://{download}", "GOSUMDB": "off",
                "BUILDKIT_FARM_CACHE": str(cache)})
    try:
        r = bootstrap(ROOT, "__build", "build_actionlint", env=env)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(cache / "go")], check=False)  # go makes its cache read-only
    # GOSUMDB=off: go.sum alone catches it
    assert r.returncode != 0
    assert f"verifying {ACTIONLINT}@v1.7.12: checksum mismatch" in r.stderr, r.stderr
    assert "SECURITY ERROR" in r.stderr
    assert not (tmp_path / "out/actionlint").exists()
