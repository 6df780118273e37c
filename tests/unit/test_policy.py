"""The policy pack's checks (review/policy/checks.py), each on its own: pass and fail cases.

Properties are given in the engine's wire form (what a policy receives: camelCase names,
secrets as {SIG_KEY: SECRET_SIG, "value": ...}, unknowns as sentinel strings). The last
tests run the whole program under Pulumi mocks for each example stack and apply every
check to what it registers, so the checks cannot drift from the real resource shapes.

Over 300 lines on purpose: every policy's pass and fail cases side by side, in one place.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

import pytest

from review.policy import checks as c
from review.policy.checks import Resource, Settings
from tests.unit import mockrt

S = Settings()
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
KEY = "-----BEGIN " + "EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END " + "EC PRIVATE KEY-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n"

GOOD_TOML = """root = "/var/lib/buildkit"
insecure-entitlements = []

[grpc]
  address = ["tcp://0.0.0.0:1234", "unix:///run/buildkit/buildkitd.sock"]
  [grpc.tls]
    cert = "/etc/buildkit/tls/cert.pem"
    key = "/etc/buildkit/tls/key.pem"
    ca = "/etc/buildkit/tls/ca.pem"

[worker.oci]
  platforms = ["linux/amd64"]
"""


def secret(v: Any) -> dict[str, Any]:
    return {c.SIG_KEY: c.SECRET_SIG, "value": v}


def heredoc(path: str, content: str) -> str:
    marker = "BKF_EOF_" + hashlib.sha256(content.encode()).hexdigest()[:12]
    return f"cat > '{path}.new' <<'{marker}'\n{content.rstrip()}\n{marker}\nmv -f '{path}.new' '{path}'\n"


def payload(toml: str | None = GOOD_TOML, cert_source: str = "stdin", platform: str = "linux/amd64",
            extra: str = "") -> str:
    env = f"BKF_NODE_NAME=n1\nBKF_PLATFORM={platform}\nBKF_CERT_SOURCE={cert_source}\nBKF_SSM_PREFIX=/bkf/dev/n1\n"
    parts = ["#!/bin/bash\nset -euo pipefail\n", heredoc("/etc/buildkit-farm/node.env", env)]
    if toml is not None:
        parts.append(heredoc("/etc/buildkit/buildkitd.toml", toml))
    parts.append(extra)
    parts.append("exec '/opt/buildkit-farm/bkf-node.sh' install\n")
    return "".join(parts)


BUNDLE = f"### ca.pem\n{CERT}### cert.pem\n{CERT}### key.pem\n{KEY}"


def res(type_: str, props: dict[str, Any], name: str = "r1", parents: tuple[str, ...] = (), **kw: Any) -> Resource:
    urn = f"urn:pulumi:dev::buildkit-farm::{'$'.join([*parents, type_])}::{name}"
    return Resource.from_wire(type_, name, props, urn=urn, **kw)


def ssh_command(create: str, stdin: Any = None, name: str = "n1-buildkitd", **kw: Any) -> Resource:
    props: dict[str, Any] = {"create": create, "connection": secret({"host": "10.0.0.1", "privateKey": KEY})}
    if stdin is not None:
        props["stdin"] = stdin
    props.update(kw)
    return res(c.REMOTE_COMMAND, props, name, (c.SSH_NODE,))


def toml_without(*lines: str) -> str:
    return "\n".join(line for line in GOOD_TOML.splitlines() if not any(x in line for x in lines)) + "\n"


# ---------------------------------------------------------------------------------------------
# values


def test_decode_marks_secrets_and_unknowns() -> None:
    v = c.decode({"a": secret({"b": KEY}), "u": UNKNOWN_STRING, "l": [1, secret("x")]})
    assert v == {"a": c.Secret({"b": KEY}), "u": c.UNKNOWN, "l": [1, c.Secret("x")]}
    assert c.reveal(v)["a"] == {"b": KEY}
    with pytest.raises(c.UnknownValue):
        c.get(v, "u")
    assert c.get(v, "a", "b") == KEY and c.get(v, "missing", "x") is None


def test_settings_from_the_stack_config() -> None:
    assert Settings.from_stack_config({}) == Settings(1234, False)
    cfg = {"buildkit-farm:buildkit": json.dumps({"port": 8443}), "buildkit-farm:allowOpenIngress": "true"}
    assert Settings.from_stack_config(cfg) == Settings(8443, True)
    assert Settings.from_stack_config({"buildkit-farm:allowOpenIngress": "false"}).allow_open_ingress is False


def test_the_urn_names_the_parents() -> None:
    r = ssh_command(payload())
    assert r.parent_types == (c.SSH_NODE,) and r.under(c.SSH_NODE)


# ---------------------------------------------------------------------------------------------
# mandatory: nodes-serve-mtls-only


def test_mtls_ssh_node_with_tls_and_a_bundle_passes() -> None:
    assert c.nodes_serve_mtls(ssh_command(payload(), secret(BUNDLE)), S) == []
    # preview of a new node: the bundle is computed later; `up` checks it
    assert c.nodes_serve_mtls(ssh_command(payload(), UNKNOWN_STRING), S) == []


@pytest.mark.parametrize(("toml", "expected"), [
    (toml_without("[grpc.tls]", "cert =", "key =", "ca ="), "without mutual TLS: [grpc.tls] cert, key, ca missing"),
    (toml_without("ca ="), "[grpc.tls] ca missing (without a CA any client may connect)"),
    (GOOD_TOML.replace('address = [', 'debugAddress = "0.0.0.0:6060"\n  address = ['), "debugAddress"),
    ("[grpc\n", "does not parse"),
])
def test_mtls_ssh_node_without_mutual_tls_fails(toml: str, expected: str) -> None:
    problems = c.nodes_serve_mtls(ssh_command(payload(toml), secret(BUNDLE)), S)
    assert len(problems) == 1 and expected in problems[0] and "n1-buildkitd" in problems[0], problems


def test_mtls_install_without_config_or_certs_fails() -> None:
    assert "carries no buildkitd.toml" in c.nodes_serve_mtls(ssh_command(payload(None), secret(BUNDLE)), S)[0]
    assert "has no stdin" in c.nodes_serve_mtls(ssh_command(payload()), S)[0]
    lacking = c.nodes_serve_mtls(ssh_command(payload(), secret(f"### ca.pem\n{CERT}")), S)
    assert lacking == ["command n1-buildkitd: the certificate bundle on stdin lacks cert.pem, key.pem"]


def test_mtls_a_direct_plaintext_buildkitd_fails() -> None:
    script = "buildkitd --addr tcp://0.0.0.0:1234 --addr unix:///run/b.sock\n"
    problems = c.nodes_serve_mtls(ssh_command(script), S)
    assert problems == ["command n1-buildkitd: buildkitd serves tcp://0.0.0.0:1234 without mutual TLS: "
                        "--tlscacert, --tlscert, --tlskey missing"]
    tls = "buildkitd --addr tcp://0.0.0.0:1234 --tlscacert /c/ca.pem --tlscert /c/c.pem --tlskey=/c/k.pem\n"
    assert c.nodes_serve_mtls(ssh_command(tls), S) == []
    # commands that do not run buildkitd are not nodes
    assert c.nodes_serve_mtls(ssh_command("mkdir -p '/opt/buildkit-farm/artifacts'"), S) == []


def user_data(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()


def instance(props: dict[str, Any], name: str = "n1-instance") -> Resource:
    base = {"metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
            "rootBlockDevice": {"encrypted": True, "volumeSize": 30}, "tags": {"buildkit-farm/platform": "linux/arm64"}}
    return res(c.EC2_INSTANCE, {**base, **props}, name, (c.AWS_NODE,))


def test_mtls_ec2_user_data_is_unpacked_and_checked() -> None:
    assert c.nodes_serve_mtls(instance({"userDataBase64": user_data(payload(cert_source="ssm"))}), S) == []
    bad = c.nodes_serve_mtls(instance({"userDataBase64": user_data(payload(toml_without("ca =")))}), S)
    assert bad and "instance n1-instance user data" in bad[0] and "ca missing" in bad[0]
    assert "not valid base64" in c.nodes_serve_mtls(instance({"userDataBase64": "%%%"}), S)[0]
    assert "has no user data" in c.nodes_serve_mtls(instance({}), S)[0]
    with pytest.raises(c.UnknownValue):
        c.nodes_serve_mtls(instance({"userDataBase64": UNKNOWN_STRING}), S)


def test_mtls_ssm_cert_source_needs_a_prefix() -> None:
    text = payload(cert_source="ssm").replace("BKF_SSM_PREFIX=/bkf/dev/n1", "BKF_SSM_PREFIX=")
    assert "BKF_SSM_PREFIX is empty" in c.nodes_serve_mtls(instance({"userDataBase64": user_data(text)}), S)[0]


def test_mtls_kubernetes_config_map() -> None:
    ok = res(c.K8S_CONFIG_MAP, {"data": {"buildkitd.toml": GOOD_TOML}}, "n1-config")
    assert c.nodes_serve_mtls(ok, S) == []
    bad = res(c.K8S_CONFIG_MAP, {"data": {"buildkitd.toml": toml_without("key =")}}, "n1-config")
    assert "[grpc.tls] key missing" in c.nodes_serve_mtls(bad, S)[0]
    assert c.nodes_serve_mtls(res(c.K8S_CONFIG_MAP, {"data": {"other": "x"}}), S) == []


CFG = "/home/user/.config/buildkit"
ARGS = ["--addr", "unix:///run/user/1000/buildkit/buildkitd.sock", "--addr", "tcp://0.0.0.0:1234",
        "--tlscacert", f"{CFG}/tls/ca.pem", "--tlscert", f"{CFG}/tls/cert.pem", "--tlskey", f"{CFG}/tls/key.pem",
        "--config", f"{CFG}/buildkitd.toml"]
IMAGE = "moby/buildkit:v0.32.2-rootless@sha256:" + "5" * 64


def statefulset(args: list[str] | None = None, image: str = IMAGE, tls_source: str = "secret",
                retention: str = "Retain", name: str = "n1-statefulset") -> Resource:
    sources = [{"configMap": {"name": "n1-config"}}, {tls_source: {"name": "n1-tls"}}]
    pod = {
        "nodeSelector": {"kubernetes.io/arch": "arm64"},
        "containers": [{"name": "buildkitd", "image": image, "args": ARGS if args is None else args,
                        "volumeMounts": [{"name": "config", "mountPath": "/home/user/.config/buildkit"}]}],
        "volumes": [{"name": "config", "projected": {"sources": sources}}],
    }
    spec = {"template": {"spec": pod}, "persistentVolumeClaimRetentionPolicy": {"whenDeleted": retention}}
    return res(c.K8S_STATEFULSET, {"spec": spec}, name, (c.K8S_NODE,))


def test_mtls_kubernetes_pod_args_and_secret_mounted_material() -> None:
    assert c.nodes_serve_mtls(statefulset(), S) == []
    no_ca = [a for a in ARGS if "ca.pem" not in a and a != "--tlscacert"]
    assert "--tlscacert missing" in c.nodes_serve_mtls(statefulset(no_ca), S)[0]
    debug = c.nodes_serve_mtls(statefulset([*ARGS, "--debugaddr", "0.0.0.0:6060"]), S)
    assert debug == ["n1-statefulset container buildkitd: buildkitd runs with --debugaddr (pprof and /metrics "
                     "without authentication)"]
    from_config_map = c.nodes_serve_mtls(statefulset(tls_source="configMap"), S)
    assert len(from_config_map) == 3 and "is not mounted from a Secret" in from_config_map[0]


# ---------------------------------------------------------------------------------------------
# mandatory: ec2-imdsv2-and-encrypted-volumes


def test_ec2_imdsv2_hop_limit_one_and_encrypted_root_passes() -> None:
    assert c.ec2_imdsv2_and_encryption(instance({}), S) == []
    off = instance({"metadataOptions": {"httpEndpoint": "disabled"}})
    assert c.ec2_imdsv2_and_encryption(off, S) == []


@pytest.mark.parametrize(("props", "expected"), [
    ({"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1}}, "httpTokens is 'optional'"),
    ({"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}, "HopLimit is 2, not 1"),
    ({"metadataOptions": {"httpTokens": "required"}}, "HopLimit is None, not 1"),
    ({"metadataOptions": None}, "metadataOptions not set"),
    ({"rootBlockDevice": {"encrypted": False}}, "root volume is not encrypted"),
    ({"rootBlockDevice": None}, "rootBlockDevice not set"),
    ({"ebsBlockDevices": [{"deviceName": "/dev/sdg", "encrypted": False}]}, "ebsBlockDevices[0] (/dev/sdg)"),
])
def test_ec2_without_imdsv2_or_encryption_fails(props: dict[str, Any], expected: str) -> None:
    problems = c.ec2_imdsv2_and_encryption(instance(props), S)
    assert len(problems) == 1 and expected in problems[0], problems


def test_ebs_volumes_and_launch_templates_are_encrypted() -> None:
    assert c.ec2_imdsv2_and_encryption(res(c.EBS_VOLUME, {"encrypted": True, "size": 100}), S) == []
    assert c.ec2_imdsv2_and_encryption(res(c.EBS_VOLUME, {"size": 100}, "cache"), S) == \
        ["volume cache is not encrypted"]
    lt = {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
          "blockDeviceMappings": [{"ebs": {"encrypted": "true"}}]}
    assert c.ec2_imdsv2_and_encryption(res(c.EC2_LAUNCH_TEMPLATE, lt), S) == []
    lt["blockDeviceMappings"] = [{"ebs": {"encrypted": "false"}}]
    problems = c.ec2_imdsv2_and_encryption(res(c.EC2_LAUNCH_TEMPLATE, lt), S)
    assert "blockDeviceMappings[0] is not encrypted" in problems[0]


# ---------------------------------------------------------------------------------------------
# mandatory: ingress-build-port-only


def sg(*rules: dict[str, Any]) -> Resource:
    return res(c.SECURITY_GROUP, {"ingress": list(rules), "egress": [{"protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}]},
               "n1-sg", (c.AWS_NODE,))


def rule(protocol: str = "tcp", lo: int = 1234, hi: int = 1234, cidrs: tuple[str, ...] = ("10.20.0.0/16",)) -> dict:
    return {"protocol": protocol, "fromPort": lo, "toPort": hi, "cidrBlocks": list(cidrs)}


def test_ingress_on_the_build_port_from_listed_cidrs_passes() -> None:
    assert c.ingress_build_port_only(sg(rule()), S) == []
    # egress is not ingress: the open egress rule above is fine


@pytest.mark.parametrize(("r", "expected"), [
    (rule(lo=22, hi=22), "opens TCP 22-22; only 1234"),
    (rule(lo=0, hi=65535), "opens TCP 0-65535"),
    (rule(protocol="-1"), "protocol '-1' is open"),
    (rule(cidrs=("0.0.0.0/0",)), "admits 0.0.0.0/0 (everyone); set buildkit-farm:allowOpenIngress true"),
    ({**rule(), "ipv6CidrBlocks": ["::/0"]}, "admits ::/0"),
])
def test_ingress_beyond_the_build_port_or_from_everywhere_fails(r: dict[str, Any], expected: str) -> None:
    problems = c.ingress_build_port_only(sg(r), S)
    assert len(problems) == 1 and expected in problems[0] and "security group n1-sg ingress[0]" in problems[0]


def test_ingress_from_ranges_that_together_cover_more_than_a_slash_eight_fails() -> None:
    halves = c.ingress_build_port_only(sg(rule(cidrs=("0.0.0.0/1", "128.0.0.0/1"))), S)
    assert halves == ["security group n1-sg ingress[0]: admits 0.0.0.0/1, 128.0.0.0/1: together 3,702,258,432 "
                      "public IPv4 addresses, more than a /8 (16,777,216); set buildkit-farm:allowOpenIngress "
                      "true to allow it explicitly"]
    # split over two rules of the group: each is narrow enough, the group is not
    split = c.ingress_build_port_only(sg(rule(cidrs=("1.0.0.0/8",)), rule(cidrs=("2.0.0.0/8",))), S)
    assert split == ["security group n1-sg ingress (all rules): admits 1.0.0.0/8, 2.0.0.0/8: together 33,554,432 "
                     "public IPv4 addresses, more than a /8 (16,777,216); set buildkit-farm:allowOpenIngress "
                     "true to allow it explicitly"]
    vpc = {"ipProtocol": "tcp", "fromPort": 1234, "toPort": 1234, "cidrIpv6": "2000::/4"}
    assert "admits 2000::/4: about a /4 of public IPv6 space" in \
        c.ingress_build_port_only(res(c.SG_INGRESS_RULE, vpc), S)[0]
    # a /8 and private space are not open; the opt-in admits the halves
    narrow = sg(rule(cidrs=("1.0.0.0/8", "10.0.0.0/8")), rule(cidrs=("172.16.0.0/12",)))
    assert c.ingress_build_port_only(narrow, S) == []
    halves_opted_in = sg(rule(cidrs=("0.0.0.0/1", "128.0.0.0/1")))
    assert c.ingress_build_port_only(halves_opted_in, Settings(allow_open_ingress=True)) == []


def test_ingress_from_everywhere_with_the_opt_in_and_another_port_from_config() -> None:
    assert c.ingress_build_port_only(sg(rule(cidrs=("0.0.0.0/0",))), Settings(allow_open_ingress=True)) == []
    assert c.ingress_build_port_only(sg(rule(lo=8443, hi=8443)), Settings(port=8443)) == []
    assert c.ingress_build_port_only(sg(rule()), Settings(port=8443))


def test_ingress_standalone_rules() -> None:
    ok = res(c.SECURITY_GROUP_RULE, {"type": "ingress", **rule()})
    assert c.ingress_build_port_only(ok, S) == []
    assert c.ingress_build_port_only(res(c.SECURITY_GROUP_RULE, {"type": "egress", **rule(lo=0, hi=0)}), S) == []
    bad = res(c.SECURITY_GROUP_RULE, {"type": "ingress", **rule(lo=22, hi=22)})
    assert "opens TCP 22-22" in c.ingress_build_port_only(bad, S)[0]
    vpc = {"ipProtocol": "tcp", "fromPort": 1234, "toPort": 1234, "cidrIpv4": "0.0.0.0/0"}
    assert "admits 0.0.0.0/0" in c.ingress_build_port_only(res(c.SG_INGRESS_RULE, vpc), S)[0]


def netpol(ingress: list[dict[str, Any]]) -> Resource:
    return res(c.K8S_NETWORK_POLICY, {"spec": {"podSelector": {}, "ingress": ingress, "egress": [{}]}}, "np",
               (c.K8S_FARM_NAMESPACE,))


def test_ingress_kubernetes_network_policy() -> None:
    good = {"from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 1234}]}
    assert c.ingress_build_port_only(netpol([good]), S) == []
    assert "allows every port" in c.ingress_build_port_only(netpol([{**good, "ports": []}]), S)[0]
    assert "allows TCP 22" in c.ingress_build_port_only(netpol([{**good, "ports": [{"port": 22}]}]), S)[0]
    assert "no 'from'" in c.ingress_build_port_only(netpol([{"ports": good["ports"]}]), S)[0]
    wide = {**good, "from": [{"ipBlock": {"cidr": "::/0"}}]}
    assert "admits ::/0" in c.ingress_build_port_only(netpol([wide]), S)[0]
    assert c.ingress_build_port_only(netpol([wide]), Settings(allow_open_ingress=True)) == []


def service(spec: dict[str, Any]) -> Resource:
    return res(c.K8S_SERVICE, {"spec": spec}, "n1-service", ("buildkit-farm:index:KubernetesNodeAddress",))


def test_ingress_kubernetes_service() -> None:
    ports = [{"name": "buildkitd", "port": 1234, "targetPort": 1234}]
    lb = {"type": "LoadBalancer", "ports": ports, "loadBalancerSourceRanges": ["10.20.0.0/16"]}
    assert c.ingress_build_port_only(service(lb), S) == []
    assert c.ingress_build_port_only(service({"type": "NodePort", "ports": [{"port": 32001, "targetPort": 1234}]}),
                                     S) == []
    assert "without loadBalancerSourceRanges admits everyone" in \
        c.ingress_build_port_only(service({**lb, "loadBalancerSourceRanges": []}), S)[0]
    assert "exposes port 22" in c.ingress_build_port_only(service({**lb, "ports": [{"port": 22}]}), S)[0]


# ---------------------------------------------------------------------------------------------
# mandatory: kubernetes-image-pinned-by-digest


def test_image_pinned_by_digest() -> None:
    assert c.image_pinned_by_digest(statefulset(), S) == []
    bad = c.image_pinned_by_digest(statefulset(image="moby/buildkit:v0.32.2-rootless"), S)
    assert bad == ["n1-statefulset container buildkitd: image 'moby/buildkit:v0.32.2-rootless' is not pinned by "
                   "digest (name:tag@sha256:<64 hex>)"]
    short = c.image_pinned_by_digest(statefulset(image="moby/buildkit@sha256:abc"), S)
    assert short and "not pinned" in short[0]
    job = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [{"name": "init", "image": "busybox:1.36"}], "containers": []}}}}}}
    assert "container init" in c.image_pinned_by_digest(res("kubernetes:batch/v1:CronJob", job), S)[0]


# ---------------------------------------------------------------------------------------------
# mandatory: no-insecure-entitlements


def test_no_insecure_entitlements() -> None:
    assert c.no_insecure_entitlements(ssh_command(payload()), S) == []
    toml = GOOD_TOML.replace("insecure-entitlements = []", 'insecure-entitlements = ["security.insecure"]')
    assert "allows insecure entitlements ['security.insecure']" in \
        c.no_insecure_entitlements(ssh_command(payload(toml)), S)[0]
    assert "allows insecure entitlements" in \
        c.no_insecure_entitlements(instance({"userDataBase64": user_data(payload(toml))}), S)[0]
    assert c.no_insecure_entitlements(res(c.K8S_CONFIG_MAP, {"data": {"buildkitd.toml": toml}}), S)
    assert c.no_insecure_entitlements(statefulset(), S) == []
    flag = c.no_insecure_entitlements(statefulset([*ARGS, "--allow-insecure-entitlement=network.host"]), S)
    assert flag == ["n1-statefulset container buildkitd: buildkitd runs with --allow-insecure-entitlement network.host"]
    builder = res(c.LOCAL_COMMAND, {"create": "docker buildx create --allow-insecure-entitlement security.insecure"})
    assert c.no_insecure_entitlements(builder, S)
    assert c.no_insecure_entitlements(res(c.LOCAL_COMMAND, {"create": "docker buildx create --driver remote"}), S) == []


# ---------------------------------------------------------------------------------------------
# mandatory: private keys only in secrets


def test_private_keys_in_inputs_must_be_secret() -> None:
    assert c.private_keys_only_in_secret_inputs(ssh_command(payload(), secret(BUNDLE)), S) == []
    plain = c.private_keys_only_in_secret_inputs(ssh_command(payload(), BUNDLE), S)
    assert plain == ["Command n1-buildkitd: a private key in plain text at .stdin; make it secret "
                     "(pulumi.Output.secret)"]
    env = res(c.LOCAL_COMMAND, {"environment": {"BKF_TLS_CA": CERT, "BKF_TLS_KEY": KEY}}, "builder-buildx")
    assert "at .environment.BKF_TLS_KEY" in c.private_keys_only_in_secret_inputs(env, S)[0]


def test_tls_private_key_outputs_are_declared_secret() -> None:
    ok = res(c.TLS_PRIVATE_KEY, {"algorithm": "ECDSA"}, additional_secret_outputs=list(c.KEY_OUTPUTS))
    assert c.private_keys_only_in_secret_inputs(ok, S) == []
    bad = res(c.TLS_PRIVATE_KEY, {"algorithm": "ECDSA"}, "ca-key", additional_secret_outputs=["privateKeyPem"])
    assert c.private_keys_only_in_secret_inputs(bad, S) == \
        ["PrivateKey ca-key: outputs privateKeyPemPkcs8, privateKeyOpenssh are not declared secret "
         "(additional_secret_outputs)"]


def test_keys_never_in_config_maps_or_plain_ssm_parameters() -> None:
    cm = res(c.K8S_CONFIG_MAP, {"data": {"key.pem": secret(KEY)}}, "tls")
    assert c.private_keys_only_in_secret_inputs(cm, S) == ["ConfigMap tls holds a private key: keys belong in a Secret"]
    ok = res(c.SSM_PARAMETER, {"type": "SecureString", "value": secret(KEY)})
    assert c.private_keys_only_in_secret_inputs(ok, S) == []
    bad = res(c.SSM_PARAMETER, {"type": "String", "value": secret(KEY)}, "n1-key")
    assert c.private_keys_only_in_secret_inputs(bad, S) == \
        ["SSM parameter n1-key holds a private key but is of type 'String', not SecureString"]
    assert c.private_keys_only_in_secret_inputs(res(c.SSM_PARAMETER, {"type": "String", "value": CERT}), S) == []


def stack(outputs: dict[str, Any]) -> Resource:
    return Resource.from_wire(c.STACK, "buildkit-farm-dev", outputs, urn="urn:pulumi:dev::buildkit-farm::"
                              "pulumi:pulumi:Stack::buildkit-farm-dev")


def test_private_keys_in_outputs_must_be_secret() -> None:
    good = stack({"clientKey": secret(KEY), "clientKeys": secret({"ci": KEY}), "caCert": CERT})
    key = res(c.TLS_PRIVATE_KEY, {"privateKeyPem": secret(KEY), "publicKeyPem": "-----BEGIN PUBLIC KEY-----"})
    assert c.private_keys_only_in_secret_outputs([good, key], S) == []
    assert c.private_keys_only_in_secret_outputs([stack({"clientKey": UNKNOWN_STRING})], S) == []
    leak = stack({"clientKeys": {"ci": KEY, "dev": secret(KEY)}})
    assert c.private_keys_only_in_secret_outputs([leak], S) == [
        ("stack output clientKeys.ci holds a private key in plain text; export it with pulumi.Output.secret",
         "urn:pulumi:dev::buildkit-farm::pulumi:pulumi:Stack::buildkit-farm-dev")]
    plain_key = res(c.TLS_PRIVATE_KEY, {"privateKeyOpenssh": KEY}, "k")
    found = c.private_keys_only_in_secret_outputs([plain_key], S)
    assert found[0][0].startswith("PrivateKey k output privateKeyOpenssh")


# ---------------------------------------------------------------------------------------------
# advisory


def test_cache_volume_protected() -> None:
    assert c.cache_volume_protected(res(c.EBS_VOLUME, {}, "n1-cache", protect=True), S) == []
    assert "cache volume n1-cache is not protected" in c.cache_volume_protected(res(c.EBS_VOLUME, {}, "n1-cache"), S)[0]
    ns = res(c.K8S_NAMESPACE, {}, "farm-namespace", (c.K8S_FARM_NAMESPACE,))
    assert "deletes every node's cache PVC" in c.cache_volume_protected(ns, S)[0]
    assert c.cache_volume_protected(res(c.K8S_NAMESPACE, {}, "other"), S) == []
    assert c.cache_volume_protected(statefulset(), S) == []
    assert "whenDeleted is not Retain" in c.cache_volume_protected(statefulset(retention="Delete"), S)[0]
    uninstall = "'/opt/buildkit-farm/bkf-node.sh' uninstall"
    assert c.cache_volume_protected(ssh_command(payload(), delete=uninstall), S) == []
    purge = c.cache_volume_protected(ssh_command(payload(), delete=uninstall + " --purge-state"), S)
    assert purge == ["command n1-buildkitd: `pulumi destroy` deletes the node's build cache "
                     "(ssh.removeStateOnDestroy: true)"]


def test_cert_validity_at_most_a_year() -> None:
    cert = {"validityPeriodHours": 8760, "isCaCertificate": False}
    assert c.cert_validity_at_most_a_year(res(c.TLS_LOCALLY_SIGNED, cert), S) == []
    long = c.cert_validity_at_most_a_year(res(c.TLS_LOCALLY_SIGNED, {**cert, "validityPeriodHours": 17520}, "srv"), S)
    assert long == ["certificate srv is valid for 17520 h (730 days), more than a year (8760 h): a leaked key stays "
                    "usable that long; lower pki.validityHours"]
    # the CA outlives its leaves by design (pki.caValidityHours)
    ca = {"validityPeriodHours": 43800, "isCaCertificate": True}
    assert c.cert_validity_at_most_a_year(res(c.TLS_SELF_SIGNED, ca), S) == []


def node(name: str, typ: str = c.SSH_NODE) -> Resource:
    return Resource.from_wire(typ, name, {}, urn=f"urn:pulumi:dev::buildkit-farm::{typ}::{name}")


def child(parent: Resource, r: Resource) -> Resource:
    return Resource(r.type, r.name, r.urn, r.props, r.protect, r.additional_secret_outputs, parent.urn)


def test_more_than_one_node_per_platform() -> None:
    a1, a2, b1 = node("amd64-1"), node("amd64-2"), node("arm64-1", c.AWS_NODE)
    rs = [a1, a2, b1,
          child(a1, ssh_command(payload(platform="linux/amd64"))),
          child(a2, ssh_command(payload(platform="linux/amd64"))),
          child(b1, instance({}))]
    assert c.more_than_one_node_per_platform(rs, S) == [
        ("linux/arm64 has a single node (arm64-1): while it restarts or is down, every linux/arm64 build fails; "
         "add a second node for it", None)]
    k1, k2 = node("k1", c.K8S_NODE), node("k2", c.K8S_NODE)
    rs += [k1, k2, child(k1, statefulset()), child(k2, statefulset()),
           child(node("x"), ssh_command(UNKNOWN_STRING))]
    assert c.more_than_one_node_per_platform(rs, S) == []


# ---------------------------------------------------------------------------------------------
# the catalogue


def test_catalogue_names_levels_and_checks() -> None:
    names = [p.name for p in c.POLICIES]
    assert len(set(names)) == len(names)
    assert {p.name for p in c.POLICIES if p.mandatory} == {
        "nodes-serve-mtls-only", "ec2-imdsv2-and-encrypted-volumes", "ingress-build-port-only",
        "kubernetes-image-pinned-by-digest", "no-insecure-entitlements", "private-keys-only-in-secret-inputs",
        "private-keys-only-in-secret-outputs"}
    assert {p.name for p in c.POLICIES if not p.mandatory} == {
        "cache-volume-protected", "cert-validity-at-most-a-year", "more-than-one-node-per-platform"}
    assert all((p.resource_check is None) != (p.stack_check is None) for p in c.POLICIES)


# ---------------------------------------------------------------------------------------------
# every check against what the real program registers (mocks), per example stack




def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def program_resources(config: dict[str, str], stack_name: str) -> list[Resource]:
    """What the program registers, as a policy sees it: wire-form inputs, URNs with parent types,
    protect and additional secret outputs (camelCase, as the SDK sends them), plus the stack's outputs."""
    run = mockrt.run_main(config, stack=stack_name)

    def parents(name: str) -> list[tuple[str, str]]:
        chain: list[tuple[str, str]] = []
        parent = run.registered[mockrt.short(name)].opts.parent
        while parent is not None and mockrt.short(parent._name) in run.registered:
            reg = run.registered[mockrt.short(parent._name)]
            chain.insert(0, (reg.typ, parent._name))
            parent = reg.opts.parent
        return chain

    def urn(name: str, typ: str) -> str:
        return f"urn:pulumi:{stack_name}::buildkit-farm::{'$'.join([*(t for t, _ in parents(name)), typ])}::{name}"

    out = []
    for a in run.mocks.resources:
        reg = run.registered[mockrt.short(a.name)]
        chain = parents(a.name)
        out.append(Resource.from_wire(
            a.typ, a.name, dict(a.inputs), urn=urn(a.name, a.typ), protect=bool(reg.opts.protect),
            additional_secret_outputs=[_camel(x) for x in reg.opts.additional_secret_outputs or []],
            parent_urn=urn(chain[-1][1], chain[-1][0]) if chain else None))
    outputs = {k: secret(v) if run.secret[k] else v for k, v in run.values.items()}
    out.append(stack(outputs))
    return out


def run_all(resources: list[Resource], settings: Settings) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in c.POLICIES:
        if p.resource_check is not None:
            msgs = [m for r in resources for m in p.resource_check(r, settings)]
        else:
            assert p.stack_check is not None
            msgs = [m for m, _ in p.stack_check(resources, settings)]
        if msgs:
            found[p.name] = msgs
    return found


def example_config(name: str, tmp_path: Any) -> dict[str, str]:
    cfg = mockrt.stack_config(mockrt.ROOT / f"Pulumi.{name}.yaml")
    if name == "local":
        (tmp_path / "id").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nMOCK\n-----END OPENSSH PRIVATE KEY-----\n")
        (tmp_path / "buildkit-v0.32.2.linux-amd64.tar.gz").write_bytes(b"tarball")
        cfg["buildkit-farm:ssh"] = json.dumps({"privateKeyPath": str(tmp_path / "id"), "artifactDir": str(tmp_path)})
    return cfg


@pytest.mark.parametrize("name", ["dev", "k8s", "local"])
def test_the_example_stacks_pass_every_mandatory_policy(name: str, tmp_path: Any) -> None:
    cfg = example_config(name, tmp_path)
    resources = program_resources(cfg, name)
    kinds = {r.type for r in resources}
    # the checks saw the node resources they are about
    expected = {"dev": {c.EC2_INSTANCE, c.EBS_VOLUME, c.SECURITY_GROUP, c.SSM_PARAMETER},
                "k8s": {c.K8S_STATEFULSET, c.K8S_CONFIG_MAP, c.K8S_NETWORK_POLICY, c.K8S_SERVICE},
                "local": {c.REMOTE_COMMAND, c.LOCAL_COMMAND}}[name]
    assert expected <= kinds, kinds
    found = run_all(resources, Settings.from_stack_config(cfg))
    # advisory only: one node per platform in every example but the local farm's two amd64 nodes
    assert set(found) == {"more-than-one-node-per-platform"}, found
    single = [m.split()[0] for m in found["more-than-one-node-per-platform"]]
    assert sorted(single) == (["linux/arm64"] if name == "local" else ["linux/amd64", "linux/arm64"]), found


def test_a_broken_program_shape_is_caught(tmp_path: Any) -> None:
    """The same resources with one node's protection removed (AWS) or key made plain (stack output)."""
    cfg = example_config("dev", tmp_path)
    resources = program_resources(cfg, "dev")
    broken = []
    for r in resources:
        if r.type == c.EBS_VOLUME and r.name == "amd64-1-cache":
            r = Resource(r.type, r.name, r.urn, {**r.props, "encrypted": False}, False, r.additional_secret_outputs,
                         r.parent_urn)
        if r.type == c.STACK:
            r = Resource(r.type, r.name, r.urn, {**r.props, "clientKey": c.reveal(r.props["clientKey"])})
        broken.append(r)
    found = run_all(broken, Settings.from_stack_config(cfg))
    assert found["ec2-imdsv2-and-encrypted-volumes"] == ["volume amd64-1-cache is not encrypted"]
    assert found["private-keys-only-in-secret-outputs"] == [
        "stack output clientKey holds a private key in plain text; export it with pulumi.Output.secret"]
    assert found["cache-volume-protected"][0].startswith("cache volume amd64-1-cache is not protected")
