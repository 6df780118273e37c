"""Another Pulumi program embeds a farm (examples/embed): the component stands on its own."""

from __future__ import annotations

import runpy

import pulumi

from tests.unit import mockrt

EXAMPLE = mockrt.ROOT / "examples" / "embed" / "__main__.py"


def test_the_example_program_builds_a_farm_under_its_own_name() -> None:
    def program() -> None:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    run = mockrt.run(program,
                     {"buildkit-farm:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nk\n"})
    farm = run.registered["ci-farm"]
    assert farm.typ == "buildkit-farm:index:BuildkitFarm"
    names = {r.name for r in run.mocks.resources} - {"ci-farm"}
    # every resource is the farm's: "<name>-<role>", parented under it, no alias to a root place
    assert names and all(n.startswith("ci-farm-") for n in names), names
    for role in ("pki", "amd64-1", "arm64-1"):
        opts = run.registered[f"ci-farm-{role}"].opts
        assert isinstance(opts.parent, pulumi.ComponentResource) and not opts.aliases
    assert "ci-farm-builder" not in names  # builder.enabled: false
    assert run.values["endpoints"] == ["tcp://build-amd64.internal.example:1234",
                                       "tcp://build-arm64.internal.example:1234"]
    assert run.values["caCert"] == mockrt.fake_pem("CERTIFICATE", "ci-farm-pki-ca")
    assert "docker buildx create" not in run.values["buildxCreateScript"]  # the script, for CI to run
    assert "acme-ci" in run.values["buildxCreateScript"]
    # the program's SSH key reaches the remote commands, as a secret only
    conn = mockrt.secret_value(run.named("ci-farm-amd64-1-buildkitd").inputs["connection"])
    assert conn["privateKey"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_the_project_installs_as_a_package_with_the_node_script(tmp_path: mockrt.Path) -> None:
    """`pip install` of the repository gives another program `components`, node script included."""
    import subprocess
    import sys
    import zipfile
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(mockrt.ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("buildkit_farm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"components/__init__.py", "components/farm.py", "components/node/bkf-node.sh",
            "components/config/farm.py", "bkf/app.py", "review/summary.py"} <= names
    assert not any(n.startswith(("tests/", "local/", "toolchain/")) for n in names)


def test_a_fresh_venv_installs_the_project_from_its_path_and_gets_bkf(tmp_path: mockrt.Path) -> None:
    """What a user of examples/embed does: `pip install <path>` into a venv of their own. The
    dependencies are the dev venv's, seen through a .pth file (the unit tier stays offline for them
    and fast); the project itself is built and installed by pip from the path."""
    import subprocess
    import sysconfig
    import venv

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    mockrt.Path(purelib, "dev-deps.pth").write_text(str(mockrt.Path(sysconfig.get_paths()["purelib"]).resolve()))
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(mockrt.ROOT)], check=True, capture_output=True,
                   cwd=tmp_path)
    meta = subprocess.run([str(py), "-c", "import importlib.metadata as m; d = m.metadata('buildkit-farm'); "
                           "print(d['Name'], d['Version'], d['License-Expression'])"],
                          capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert meta == ["buildkit-farm", _version(), "Apache-2.0"]
    # the example's imports, from the installed package (cwd is not the repository)
    where = subprocess.run([str(py), "-c", "import components, bkf.app; "
                            "from components import BuildkitFarm, FarmArgs, HostInputs, parse_config; "
                            "print(components.__file__)"], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(env_dir)), where.stdout
    r = subprocess.run([str(env_dir / "bin" / "bkf"), "--help"], capture_output=True, text=True, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "COLUMNS": "100"})
    assert r.returncode == 0, r.stderr
    assert {"status", "wake", "builder", "summary", "insights"} <= set(r.stdout.split()), r.stdout


def _version() -> str:
    import tomllib

    return str(tomllib.loads((mockrt.ROOT / "pyproject.toml").read_text())["project"]["version"])
