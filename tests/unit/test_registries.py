"""Registry settings (`registries:`): validated like every key, rendered on all three backends."""

from __future__ import annotations

import json
import runpy
import tomllib
from typing import Any

import kubernetes_validate
import pytest

from components.config import ConfigError, parse_config
from components.node.buildkitd_toml import RegistryHost, registry_files, render_buildkitd_toml
from components.node.layout import ROOTFUL_LAYOUT, ROOTLESS_LAYOUT
from components.node.payload import render_payload, render_uninstall
from review.policy.checks import Settings
from review.policy.payload import user_data_payload
from tests.support.pki import make_ca
from tests.unit import mockrt
from tests.unit.test_aws import DEV, user_data
from tests.unit.test_kubernetes import K8S, K8S_VERSION, objects
from tests.unit.test_node_bootstrap import SETTINGS, heredocs
from tests.unit.test_policy import example_config, program_resources, run_all
from tests.unit.test_ssh import local_config
from tests.unit.test_summary import lines, preview, step

CA = make_ca()
OTHER_CA = make_ca("another CA")
LOCAL = "10.77.0.1:5443"
CA_PATH = "/etc/buildkit/registry/registry-10.77.0.1_5443-ca.pem"
REGISTRIES = {
    LOCAL: {"ca": CA.cert_pem},
    "docker.io": {"mirrors": ["mirror.internal:5000", "10.0.0.9:5000"]},
    "10.0.0.9:5000": {"http": True},
}


def ssh_raw(registries: Any) -> dict[str, Any]:
    return {"backend": "ssh", "nodes": [{"name": "amd64-1", "platform": "linux/amd64", "host": "10.77.0.11"}],
            "ssh": {"privateKeyPath": "/k"}, "registries": registries}


def problems(registries: Any) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(ssh_raw(registries))
    return e.value.problems


# ----------------------------------------------------------------------------- config


def test_registries_parse_in_config_order() -> None:
    cfg = parse_config(ssh_raw(REGISTRIES))
    assert list(cfg.registries) == [LOCAL, "docker.io", "10.0.0.9:5000"]
    assert cfg.registries["docker.io"].mirrors == ("mirror.internal:5000", "10.0.0.9:5000")
    assert cfg.registries[LOCAL].ca == CA.cert_pem
    assert cfg.registries["10.0.0.9:5000"].http is True
    assert parse_config(ssh_raw({})).registries == {}


@pytest.mark.parametrize(("registries", "expected"), [
    ({"https://r.example.com": {}},
     '\'https://r.example.com\' is not a registry host like registry.example.com or 10.0.0.5:5000'),
    ({"r.example.com:99999": {}}, "'r.example.com:99999' is not a registry host"),
    ({"r.example.com/path": {}}, "'r.example.com/path' is not a registry host"),
    ({"docker.io": {"mirrors": ["mirror.example.com/v2"]}},
     'registries["docker.io"].mirrors[0]: \'mirror.example.com/v2\' is not a registry host'),
    ({"docker.io": {"mirrors": ["docker.io"]}},
     'registries["docker.io"].mirrors[0]: \'docker.io\' is the registry itself; a mirror is another host'),
    ({"docker.io": {"mirrors": ["m.io", "m.io"]}}, 'registries["docker.io"].mirrors[1]: \'m.io\' is a duplicate'),
    ({"r.io": {"ca": "not a pem"}},
     'registries["r.io"].ca: \'not a pem\' is not PEM CA certificates (-----BEGIN CERTIFICATE-----)'),
    ({"r.io": {"ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}},
     "is not valid PEM: a certificate block does not parse as X.509"),
    ({"r.io": {"ca": CA.cert_pem + CA.key_pem}}, "holds a private key; give only the CA's certificate"),
    ({"r.io": {"ca": make_ca(expired=True).cert_pem}}, "that expired on"),
    ({"r.io": {"http": True}},
     'registries["r.io"].http: true is refused for \'r.io\': plain HTTP sends images and the registry '
     "credentials unencrypted (allowed only for a loopback or private IP address"),
    ({"8.8.8.8:5000": {"http": True}}, "true is refused for '8.8.8.8:5000'"),
    ({"r.io": {"http": "yes"}}, 'registries["r.io"].http: \'yes\' is not true or false'),
    ({"r.io": {"insecure": True}}, 'registries["r.io"].insecure: unknown key (allowed: ca, http, mirrors)'),
    ({"r.io": "x"}, 'registries["r.io"]: \'x\' is not an object'),
    ([], "registries: [] is not an object"),
])
def test_each_problem_names_key_value_and_allowed(registries: Any, expected: str) -> None:
    found = problems(registries)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "10.77.0.1:5000", "172.16.3.4",
                                  "192.168.1.2:80", "[::1]:5000", "[fd00::1]:5000"])
def test_plain_http_is_allowed_for_loopback_and_private_addresses(host: str) -> None:
    assert parse_config(ssh_raw({host: {"http": True}})).registries[host].http is True


def test_every_registry_problem_at_once_beside_other_keys() -> None:
    raw = ssh_raw({"r.io": {"http": True, "ca": "x"}, "bad host": {}, "d.io": {"mirrors": ["d.io"]}})
    raw["nodes"][0]["platform"] = "linux/amd"
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    text = "\n".join(e.value.problems)
    for part in ('registries["r.io"].http', 'registries["r.io"].ca', "'bad host'", 'registries["d.io"].mirrors[0]',
                 "nodes[0].platform"):
        assert part in text, text


def test_a_bad_registry_config_creates_nothing(tmp_path: Any) -> None:
    cfg = local_config(tmp_path)
    cfg["buildkit-farm:registries"] = json.dumps({"r.example.com": {"http": True}})
    raised: list[BaseException] = []

    def program() -> None:
        try:
            runpy.run_path(str(mockrt.ROOT / "__main__.py"), run_name="__main__")
        except Exception as e:
            raised.append(e)
    run = mockrt.run(program, cfg, stack="local")
    assert raised and str(raised[0]).startswith("invalid buildkit-farm config (1 problem(s))"), raised
    assert "refused for 'r.example.com'" in str(raised[0])
    assert not run.mocks.resources and not run.registered


# ----------------------------------------------------------------------------- rendering


def hosts(layout: Any = ROOTFUL_LAYOUT) -> tuple[RegistryHost, ...]:
    return (RegistryHost(LOCAL, ca_pem=CA.cert_pem), RegistryHost("docker.io", mirrors=("mirror.internal:5000",)),
            RegistryHost("10.0.0.9:5000", http=True))


def test_registry_sections_in_buildkitd_toml() -> None:
    text = render_buildkitd_toml(platform="linux/amd64", port=1234, volume_gb=100, registries=hosts())
    t = tomllib.loads(text)
    assert t["registry"] == {LOCAL: {"ca": [CA_PATH]}, "docker.io": {"mirrors": ["mirror.internal:5000"]},
                             "10.0.0.9:5000": {"http": True}}
    # nothing else moved: the rest of the file is the file without registries
    plain = render_buildkitd_toml(platform="linux/amd64", port=1234, volume_gb=100)
    assert text.startswith(plain)
    assert "registry" not in plain and "insecure =" not in text


def test_a_new_ca_changes_the_toml_so_the_daemon_restarts() -> None:
    def toml(pem: str) -> str:
        return render_buildkitd_toml(platform="linux/amd64", port=1234, volume_gb=100,
                                     registries=(RegistryHost(LOCAL, ca_pem=pem),))
    assert toml(CA.cert_pem) != toml(OTHER_CA.cert_pem)


def test_ca_files_beside_the_config() -> None:
    assert registry_files(ROOTFUL_LAYOUT, hosts()) == {CA_PATH: CA.cert_pem}
    assert registry_files(ROOTLESS_LAYOUT, hosts()) == {
        "/home/user/.config/buildkit/registry/registry-10.77.0.1_5443-ca.pem": CA.cert_pem}


def test_payload_writes_ca_files_0600_in_a_0700_dir_and_drops_stale_ones() -> None:
    files = registry_files(ROOTFUL_LAYOUT, hosts())
    payload = render_payload(SETTINGS, "toml\n", files=files)
    assert heredocs(payload)[CA_PATH] == CA.cert_pem
    assert "install -d -m 0700 '/etc/buildkit/registry'\n" in payload
    assert f"chmod 0600 '{CA_PATH}.new'" in payload
    assert ("\nfind '/etc/buildkit/registry' -mindepth 1 -maxdepth 1 ! -name 'registry-10.77.0.1_5443-ca.pem' "
            "-exec rm -rf {} +") in payload
    # the CA files are in place before the TOML that names them
    assert payload.index(CA_PATH) < payload.index("/etc/buildkit/buildkitd.toml")
    assert render_payload(SETTINGS, "toml\n", files={}) == render_payload(SETTINGS, "toml\n")
    assert render_uninstall(False, ("/etc/buildkit/registry",)).startswith("rm -rf '/etc/buildkit/registry'; ")


# ----------------------------------------------------------------------------- backends


@pytest.fixture(scope="module")
def ssh_run(tmp_path_factory: pytest.TempPathFactory) -> mockrt.Run:
    cfg = local_config(tmp_path_factory.mktemp("reg"))
    cfg["buildkit-farm:registries"] = json.dumps(REGISTRIES)
    return mockrt.run_main(cfg, stack="local")


def test_ssh_payload_carries_the_sections_and_the_ca(ssh_run: mockrt.Run) -> None:
    for node in ("amd64-1", "arm64-1"):
        cmd = ssh_run.named(f"{node}-buildkitd").inputs
        docs = heredocs(cmd["create"])
        assert tomllib.loads(docs["/etc/buildkit/buildkitd.toml"])["registry"][LOCAL] == {"ca": [CA_PATH]}
        assert docs[CA_PATH] == CA.cert_pem
        assert cmd["delete"].startswith("rm -rf '/etc/buildkit/registry'; ")


def test_aws_user_data_carries_the_sections_and_the_ca() -> None:
    cfg = dict(DEV)
    cfg["buildkit-farm:registries"] = json.dumps(REGISTRIES)
    run = mockrt.run_main(cfg)
    for node in ("amd64-1", "arm64-1"):
        docs = heredocs(user_data(run, node))
        assert tomllib.loads(docs["/etc/buildkit/buildkitd.toml"])["registry"]["docker.io"] == {
            "mirrors": ["mirror.internal:5000", "10.0.0.9:5000"]}
        assert docs[CA_PATH] == CA.cert_pem


def test_kubernetes_configmap_and_mount_carry_the_ca() -> None:
    cfg = dict(K8S)
    cfg["buildkit-farm:registries"] = json.dumps(REGISTRIES)
    objs = objects(mockrt.run_main(cfg, stack="k8s"))
    key = "registry-10.77.0.1_5443-ca.pem"
    for name, obj in objs.items():
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == "1.37", name
    for node in ("amd64-1", "arm64-1"):
        data = objs[f"{node}-config"]["data"]
        assert data[key] == CA.cert_pem
        toml = tomllib.loads(data["buildkitd.toml"])
        assert toml["registry"][LOCAL] == {"ca": [f"/home/user/.config/buildkit/registry/{key}"]}
        volume = objs[f"{node}-statefulset"]["spec"]["template"]["spec"]["volumes"][0]["projected"]
        assert volume["defaultMode"] == 0o440
        assert {"key": key, "path": f"registry/{key}"} in volume["sources"][0]["configMap"]["items"]


@pytest.mark.parametrize("name", ["dev", "k8s", "local"])
def test_the_policy_pack_passes_stacks_with_registries(name: str, tmp_path: Any) -> None:
    """CA files in payloads and ConfigMaps (and the ECR cache on aws) raise no mandatory finding."""
    cfg = example_config(name, tmp_path)
    cfg["buildkit-farm:registries"] = json.dumps(REGISTRIES)
    if name == "dev":
        cfg = mockrt.with_section(cfg, "aws", cacheRepository="buildkit-farm/cache")
    resources = program_resources(cfg, name)
    # the checks saw the CA (EC2 user data is gzipped: unpacked as the policy does)
    assert any(CA.cert_pem.splitlines()[1] in json.dumps(r.props, default=str) + (user_data_payload(r) or "")
               for r in resources)
    found = run_all(resources, Settings.from_stack_config(cfg))
    assert set(found) == {"more-than-one-node-per-platform"}, found


def test_review_summary_tells_the_ca_cleanup_apart_from_the_cache_setting() -> None:
    """Adding registries changes the SSH delete command (it removes the CA files): not a cache change."""
    ssh, cmd = ("buildkit-farm:index:SshNode", "amd64-1"), "command:remote:Command"
    old = {"create": "x", "delete": render_uninstall(False)}
    registry = {"create": "x", "delete": render_uninstall(False, ("/etc/buildkit/registry",))}
    p = preview(step("update", cmd, "amd64-1-buildkitd", ssh, old, registry, ("delete",)))
    assert lines(p) == ["node amd64-1: what `pulumi destroy` removes besides the daemon changes (registry CA files); "
                        "its build cache is unaffected"]
    purge = {"create": "x", "delete": render_uninstall(True, ("/etc/buildkit/registry",))}
    p = preview(step("update", cmd, "amd64-1-buildkitd", ssh, registry, purge, ("delete",)))
    assert lines(p) == ["node amd64-1: `pulumi destroy` now deletes its build cache"]
    p = preview(step("update", cmd, "amd64-1-buildkitd", ssh, purge, old, ("delete",)))
    assert lines(p) == ["node amd64-1: `pulumi destroy` now keeps its build cache"]


def test_without_registries_nothing_of_them_is_rendered_but_the_cleanup(tmp_path: Any) -> None:
    """No section, file, mount item or output: only the removal of CA files an earlier config with
    registries left on the host (EC2 and SSH hosts keep their config dir across updates)."""
    cleanup = "rm -rf '/etc/buildkit/registry'\n"
    dev = mockrt.run_main(DEV)
    for node in ("amd64-1", "arm64-1"):
        ud = user_data(dev, node)
        assert cleanup in ud and "registry" not in ud.replace(cleanup, "")
    k8s = json.dumps(objects(mockrt.run_main(K8S, stack="k8s")))
    assert "registry" not in k8s
    local = mockrt.run_main(local_config(tmp_path), stack="local")
    for node in ("amd64-1", "arm64-1"):
        cmd = local.named(f"{node}-buildkitd").inputs
        assert cleanup in cmd["create"] and "registry" not in cmd["create"].replace(cleanup, "")
        assert "registry" not in cmd["delete"]
