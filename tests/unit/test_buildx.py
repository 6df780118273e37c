"""buildx command rendering (pure), and the create script run against stand-in buildx/buildctl.

Over 300 lines on purpose: one stand-in farm (run_spare_script) serves every check of the create
script's keys, failover, probe bound and diagnosis; split, each file would need its own copy.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from components.builder.affinity import rank
from components.builder.scripts import (
    BuilderNode,
    create_args,
    driver_opts,
    has_spares,
    render_create_script,
)
from components.builder.setup_action import setup_buildx_action

NODES = [BuilderNode("amd64-1", "linux/amd64", "tcp://10.0.0.1:1234", "10.0.0.1"),
         BuilderNode("arm64-1", "linux/arm64", "tcp://b.example:1234", "b.example")]


def test_first_node_creates_the_rest_append() -> None:
    calls = create_args("bkf", NODES, "/abs/certs")
    assert calls[0] == ["create", "--name", "bkf", "--driver", "remote", "--node", "amd64-1", "--platform",
                        "linux/amd64", "--driver-opt", driver_opts("10.0.0.1", "/abs/certs"), "tcp://10.0.0.1:1234"]
    assert calls[1][:2] == ["create", "--append"] and calls[1][-1] == "tcp://b.example:1234"
    assert driver_opts("b.example", "/c") == "servername=b.example,cacert=/c/ca.pem,cert=/c/cert.pem,key=/c/key.pem"


def test_no_nodes_is_an_error() -> None:
    with pytest.raises(ValueError):
        create_args("bkf", [], "/c")
    with pytest.raises(ValueError):
        setup_buildx_action([])


def test_single_node_action_has_empty_append() -> None:
    assert setup_buildx_action(NODES[:1])["append"] == ""


def test_create_script_passes_shellcheck(tmp_path: Path) -> None:
    assert shutil.which("shellcheck"), "shellcheck missing: run toolchain/bootstrap.sh"
    p = tmp_path / "create.sh"
    p.write_text(render_create_script("bkf", NODES))
    subprocess.run(["shellcheck", str(p)], check=True)


def test_create_script_refuses_missing_secrets(tmp_path: Path) -> None:
    r = subprocess.run(["bash", "-c", render_create_script("bkf", NODES)], env={"PATH": "/usr/bin:/bin",
                       "HOME": str(tmp_path)}, capture_output=True, text=True)
    assert r.returncode != 0 and "set BKF_TLS_CA" in r.stderr
    assert not (tmp_path / ".docker").exists()


def test_create_script_writes_0600_cert_files_with_absolute_paths(tmp_path: Path) -> None:
    # a fake buildx records its argv; the real one is exercised in the daemon tier
    fake = tmp_path / "fakebx"
    fake.write_text('#!/bin/bash\necho "$@" >> "$BX_LOG"\n'
                    'case "$*" in\n'
                    '  "inspect --bootstrap probe-amd64-1") echo "Platforms: linux/amd64, linux/386";;\n'
                    '  "inspect --bootstrap probe-arm64-1") echo "Platforms: linux/arm64";;\n'
                    'esac\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BX_LOG": str(tmp_path / "log"),
           "BKF_TLS_CA": "CA", "BKF_TLS_CERT": "CERT", "BKF_TLS_KEY": "KEY",
           "BUILDX_CONFIG": str(tmp_path / "bx")}
    subprocess.run(["bash", "-c", render_create_script("bkf", NODES, buildx=str(fake))], env=env, check=True,
                   cwd=tmp_path)
    certs = tmp_path / "bx" / "certs" / "bkf"
    for name, content in (("ca.pem", "CA\n"), ("cert.pem", "CERT\n"), ("key.pem", "KEY\n")):
        assert (certs / name).read_text() == content
        assert (certs / name).stat().st_mode & 0o777 == 0o600
    log = (tmp_path / "log").read_text().splitlines()
    # preflight first (each node alone, nothing pinned), then the real builder
    assert log[0].startswith("create --name probe-amd64-1 --driver remote --driver-opt servername=10.0.0.1,")
    assert log[1] == "inspect --bootstrap probe-amd64-1"
    assert log[3] == "inspect --bootstrap probe-arm64-1"
    assert log[4] == "rm bkf"
    assert f"cacert={certs}/ca.pem" in log[5] and "--platform linux/amd64" in log[5]
    assert "--append" in log[6] and "--platform linux/arm64" in log[6]
    assert log[7] == "inspect --bootstrap bkf"


def test_create_script_stops_on_a_wrong_platform_before_touching_the_builder(tmp_path: Path) -> None:
    fake = tmp_path / "fakebx"
    fake.write_text('#!/bin/bash\necho "$@" >> "$BX_LOG"\n'
                    '[ "$1 $2" = "inspect --bootstrap" ] && echo "Platforms: linux/amd64, linux/arm64"\nexit 0\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BX_LOG": str(tmp_path / "log"),
           "BKF_TLS_CA": "CA", "BKF_TLS_CERT": "CERT", "BKF_TLS_KEY": "KEY"}
    r = subprocess.run(["bash", "-c", render_create_script("bkf", NODES, buildx=str(fake))], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "node arm64-1 (tcp://b.example:1234) should build linux/arm64 natively, but its daemon reports " \
           "linux/amd64 first" in r.stderr
    assert "rm bkf" not in (tmp_path / "log").read_text()


# --- several nodes per platform: --key orders them (rendezvous hashing), the first that passes joins
SPARE = [BuilderNode("amd64-1", "linux/amd64", "tcp://10.0.0.1:1234", "10.0.0.1"),
         BuilderNode("arm64-1", "linux/arm64", "tcp://10.0.0.2:1234", "10.0.0.2"),
         BuilderNode("amd64-2", "linux/amd64", "tcp://10.0.0.3:1234", "10.0.0.3"),
         BuilderNode("amd64-3", "linux/amd64", "tcp://10.0.0.4:1234", "10.0.0.4")]


def run_spare_script(tmp_path: Path, *args: str, down: str = "", env_key: str | None = None,
                     nodes: list[BuilderNode] = SPARE, path: str | None = None,
                     load_bound: float = 1.25, silent: str = "", probe_timeout: int = 10,
                     emulate: tuple[str, ...] = (),
                     **env_extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The create script against a fake buildx: nodes named in `down` fail their preflight (refused
    at once), nodes named in `silent` drop packets: as buildx does then, their create and inspect
    each wait 20 s (buildx's own timeouts) before inspect fails. buildctl (the diagnosis, and the
    load reading with spare nodes) logs its calls to the same log and reports a refused dial; a
    given `path` replaces that PATH (tests/unit/test_spread.py brings its own buildctl, or none)."""
    fake = tmp_path / "fakebx"
    fake.write_text('#!/bin/bash\necho "$@" >> "$BX_LOG"\n'
                    'n=${3#probe-}\n'
                    'case $1:" $BX_SILENT " in create:*" $n "*|inspect:*" $n "*)\n'
                    '  sleep 20; echo "waited out: $*" >> "$BX_LOG";; esac\n'
                    'if [ "$1 $2" = "inspect --bootstrap" ]; then\n'
                    '  case " $BX_DOWN $BX_SILENT " in *" $n "*) echo "context deadline exceeded"; exit 1;; esac\n'
                    '  case $n in amd64-*) echo "Platforms: linux/amd64, linux/386";;\n'
                    '    arm64-*) echo "Platforms: linux/arm64";; esac\n'
                    'fi\nexit 0\n')
    fake.chmod(0o755)
    bin_ = tmp_path / "bin-diagnose"
    bin_.mkdir(exist_ok=True)
    # silent nodes are silent to buildctl too; any other node refuses the dial
    (bin_ / "buildctl").write_text('#!/bin/bash\necho "buildctl $*" >> "$BX_LOG"\n'
                                   'a=" $* "; a=${a#* --addr }; a=${a%% *}\n'
                                   'case " ${BX_SILENT_EPS:-} " in *" $a "*) exec sleep 30;; esac\n'
                                   'echo "error: dial tcp: connect: connection refused" >&2; exit 1\n')
    (bin_ / "buildctl").chmod(0o755)
    log = tmp_path / "log"
    log.unlink(missing_ok=True)
    env = {"PATH": path or f"{bin_}:/usr/bin:/bin", "HOME": str(tmp_path), "BX_LOG": str(log), "BX_DOWN": down,
           "BX_SILENT": silent, "BX_SILENT_EPS": " ".join(n.endpoint for n in nodes if n.name in silent.split()),
           "BKF_TLS_CA": "CA", "BKF_TLS_CERT": "CERT", "BKF_TLS_KEY": "KEY",
           "BUILDX_CONFIG": str(tmp_path / "bx"), **env_extra}
    if env_key is not None:
        env["BKF_KEY"] = env_key
    script = tmp_path / "create.sh"
    script.write_text(render_create_script("bkf", nodes, buildx=str(fake), load_bound=load_bound,
                                           probe_timeout=probe_timeout, emulate=emulate))
    r = subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=300)
    return r, log.read_text().splitlines() if log.exists() else []


def joined(log: list[str]) -> list[str]:
    """The --node names of the real builder's create calls, in order."""
    return [line.split("--node ")[1].split()[0] for line in log if line.startswith("create") and "--name bkf " in line]


def test_one_node_per_platform_keeps_todays_script_and_ignores_a_key(tmp_path: Path) -> None:
    script = render_create_script("bkf", NODES)
    assert "rank()" not in script and "BKF_KEY" not in script
    assert not has_spares(NODES) and has_spares(SPARE)


def test_a_key_picks_each_platforms_node_in_rendezvous_order_as_python_does(tmp_path: Path) -> None:
    amd = [n.name for n in SPARE if n.platform == "linux/amd64"]
    seen = set()
    for key in ("acme/api", "acme/web", "octo/cat", "a b'c\"d", "x" * 200):
        r, log = run_spare_script(tmp_path, "--key", key)
        assert r.returncode == 0, r.stderr
        want = rank(key, amd)[0]
        seen.add(want)
        assert joined(log) == [want, "arm64-1"], (key, log)
        assert f"builder bkf ready: {want}=linux/amd64 arm64-1=linux/arm64" in r.stdout
        # only the chosen node was probed (it was up)
        assert [x for x in log if x.startswith("inspect --bootstrap probe-amd64")] == [
            f"inspect --bootstrap probe-{want}"]
    assert len(seen) > 1  # the keys do spread
    # the env var is the same as --key; --key=K too
    r, log = run_spare_script(tmp_path, env_key="acme/api")
    assert joined(log)[0] == rank("acme/api", amd)[0]
    r, log = run_spare_script(tmp_path, "--key=acme/web")
    assert joined(log)[0] == rank("acme/web", amd)[0]


def test_an_unreachable_node_is_skipped_for_the_next_in_the_keys_order(tmp_path: Path) -> None:
    order = rank("acme/api", ["amd64-1", "amd64-2", "amd64-3"])
    r, log = run_spare_script(tmp_path, "--key", "acme/api", down=order[0])
    assert r.returncode == 0, r.stderr
    assert joined(log) == [order[1], "arm64-1"]
    assert f"preflight: node {order[0]} (tcp://" in r.stderr and f"affinity: skipping {order[0]}" in r.stderr
    r, log = run_spare_script(tmp_path, "--key", "acme/api", down=f"{order[0]} {order[1]}")
    assert joined(log) == [order[2], "arm64-1"]


def test_no_reachable_node_of_a_platform_fails_before_touching_the_builder(tmp_path: Path) -> None:
    r, log = run_spare_script(tmp_path, "--key", "acme/api", down="amd64-1 amd64-2 amd64-3")
    assert r.returncode != 0
    order = " ".join(rank("acme/api", ["amd64-1", "amd64-2", "amd64-3"]))
    assert f"no node of linux/amd64 passed the preflight (tried {order})" in r.stderr
    assert "rm bkf" not in log and not joined(log)


def test_without_a_key_every_node_is_checked_and_joins_as_today(tmp_path: Path) -> None:
    r, log = run_spare_script(tmp_path)
    assert r.returncode == 0, r.stderr
    assert joined(log) == ["amd64-1", "arm64-1", "amd64-2", "amd64-3"]
    assert "--append" not in next(x for x in log if "--node amd64-1" in x)
    assert all("--append" in x for x in log if x.startswith("create --append"))
    r, log = run_spare_script(tmp_path, down="amd64-3")
    assert r.returncode != 0 and "node amd64-3 (tcp://10.0.0.4:1234) is unreachable" in r.stderr
    assert "amd64-3 of linux/amd64 failed the preflight (tried amd64-1 amd64-2 amd64-3); without a key every " \
        "node joins" in r.stderr
    assert "rm bkf" not in log


def test_a_silent_node_costs_the_probe_bound_once_and_the_key_goes_to_the_next(tmp_path: Path) -> None:
    """A node that drops packets: the bound cuts its probe (create and inspect each wait 20 s in
    buildx), the script says so naming the node and the bound, asks buildctl nothing about it (that
    would wait for the same silence), and the key's next node joins."""
    order = rank("acme/api", ["amd64-1", "amd64-2", "amd64-3"])
    t0 = time.monotonic()
    r, log = run_spare_script(tmp_path, "--key", "acme/api", silent=order[0], probe_timeout=2)
    took = time.monotonic() - t0
    print(f"\nfailover past a silent node (bound 2 s, buildx would wait 2 x 20 s): {took:.1f} s")
    assert r.returncode == 0, r.stderr
    assert joined(log) == [order[1], "arm64-1"]
    ep = next(n.endpoint for n in SPARE if n.name == order[0])
    # the bound cut the probe: removing it would leave buildx's own wait and no such line
    assert f"probe of node {order[0]} ({ep}) timed out after 2s (the bound: builder.probeTimeoutSeconds" \
        in r.stderr, r.stderr
    assert f"affinity: skipping {order[0]}" in r.stderr
    # cut in its create (killed, not waited out): the inspect of the silent node never ran, and no
    # diagnosis was attempted
    assert not [x for x in log if x.startswith("waited out")], log
    assert f"inspect --bootstrap probe-{order[0]}" not in log
    # no diagnosis of it (the load reads of spare nodes are buildctl calls too, with the same bound)
    assert not [x for x in log if x.startswith("buildctl") and "debug histories" not in x], log


def test_the_environment_overrides_the_probe_bound_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    r, log = run_spare_script(tmp_path, "--key", "acme/api", silent="amd64-1 amd64-2 amd64-3",
                              BKF_PROBE_TIMEOUT="1")
    assert r.returncode != 0
    for n in ("amd64-1", "amd64-2", "amd64-3"):
        assert f"probe of node {n} (tcp://" in r.stderr and ") timed out after 1s (the bound" in r.stderr
    assert "no node of linux/amd64 passed the preflight" in r.stderr and "rm bkf" not in log
    for bad in ("0", "5s", "012", "-1"):
        r, log = run_spare_script(tmp_path, BKF_PROBE_TIMEOUT=bad)
        assert r.returncode == 1, bad
        assert r.stderr.strip() == ("preflight: BKF_PROBE_TIMEOUT must be whole seconds, 1 or more (like "
                                    f"builder.probeTimeoutSeconds), not '{bad}'"), r.stderr
        assert log == []


def test_a_refused_node_is_still_diagnosed_within_the_probe_bound(tmp_path: Path) -> None:
    first = next(n for n in SPARE if n.name == rank("acme/api", ["amd64-1", "amd64-2", "amd64-3"])[0])
    r, log = run_spare_script(tmp_path, "--key", "acme/api", down=first.name, probe_timeout=7)
    assert r.returncode == 0, r.stderr
    assert "error: dial tcp: connect: connection refused" in r.stderr and "timed out" not in r.stderr
    assert [x for x in log if x.startswith("buildctl") and "debug histories" not in x] == [
        f"buildctl --addr {first.endpoint} --tlsservername {first.server_name} --tlscacert "
        f"{tmp_path}/bx/certs/bkf/ca.pem --tlscert {tmp_path}/bx/certs/bkf/cert.pem --tlskey "
        f"{tmp_path}/bx/certs/bkf/key.pem debug workers"]
    script = render_create_script("bkf", SPARE, probe_timeout=7)
    assert "probe_timeout=${BKF_PROBE_TIMEOUT:-7}" in script
    # the diagnosis (buildctl, else openssl) has the same bound, never a fixed one
    # (the diagnosis, and the buildctl question after a probe the bound cut)
    assert script.count('timeout -k 1 "$probe_timeout" ') == 3 and "timeout 30" not in script


def test_a_refusal_that_buildx_retries_past_the_bound_is_reported_as_the_refusal(tmp_path: Path) -> None:
    # real buildx retries a refused dial until its own timeout, so the bound cuts the probe of a
    # node that refuses, as it cuts a silent one; buildctl answers the refusal at once, and that is
    # what the script reports (the node is not called silent)
    first = next(n for n in SPARE if n.name == rank("acme/api", ["amd64-1", "amd64-2", "amd64-3"])[0])
    r, log = run_spare_script(tmp_path, "--key", "acme/api", silent=first.name, probe_timeout=2, BX_SILENT_EPS="")
    assert r.returncode == 0, r.stderr
    assert "error: dial tcp: connect: connection refused" in r.stderr and "timed out" not in r.stderr, r.stderr
    assert f"affinity: skipping {first.name}" in r.stderr
    assert f"inspect --bootstrap probe-{first.name}" not in log  # the bound cut its create


def test_a_probe_bound_under_a_second_is_refused() -> None:
    with pytest.raises(ValueError, match="probe_timeout must be 1 second or more, not 0"):
        render_create_script("bkf", NODES, probe_timeout=0)


def test_a_bad_argument_is_refused(tmp_path: Path) -> None:
    r, _ = run_spare_script(tmp_path, "--kee", "x")
    assert r.returncode == 2 and "usage:" in r.stderr
    r, _ = run_spare_script(tmp_path, "--key")
    assert r.returncode != 0 and "--key needs a value" in r.stderr


def test_spare_script_passes_shellcheck(tmp_path: Path) -> None:
    p = tmp_path / "create.sh"
    p.write_text(render_create_script("bkf", SPARE))
    subprocess.run(["shellcheck", str(p)], check=True)


def test_the_actions_append_input_keeps_its_bytes() -> None:
    """PyYAML writes it now; the bytes are the stack output's, as the hand-written emitter wrote them
    (checked against it over generated node lists before it was removed): keys plain, values quoted."""
    nodes = [*NODES, BuilderNode("amd64-2", "linux/amd64", "tcp://[fd00::3]:1234", "fd00::3")]
    append = str(setup_buildx_action(nodes)["append"])
    assert append == (
        '- name: "arm64-1"\n  endpoint: "tcp://b.example:1234"\n  platforms: "linux/arm64"\n'
        '  driver-opts:\n    - "servername=b.example"\n'
        '- name: "amd64-2"\n  endpoint: "tcp://[fd00::3]:1234"\n  platforms: "linux/amd64"\n'
        '  driver-opts:\n    - "servername=fd00::3"\n')
    assert yaml.safe_load(append) == [
        {"name": n.name, "endpoint": n.endpoint, "platforms": n.platform,
         "driver-opts": [f"servername={n.server_name}"]} for n in nodes[1:]]
