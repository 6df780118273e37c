"""Mandatory: EC2 nodes require IMDSv2 (hop limit 1) and encrypt every volume."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from review.policy.resources import EBS_VOLUME, EC2_INSTANCE, EC2_LAUNCH_TEMPLATE, Resource, Settings, get


def _imds_problems(label: str, mo: Any) -> list[str]:
    if not isinstance(mo, Mapping):
        return [f"{label}: metadataOptions not set, so IMDSv1 may stay enabled; set httpTokens: required and "
                "httpPutResponseHopLimit: 1"]
    if get(mo, "httpEndpoint") == "disabled":
        return []
    problems = []
    if get(mo, "httpTokens") != "required":
        problems.append(f"{label}: metadataOptions.httpTokens is {get(mo, 'httpTokens')!r}, not 'required' "
                        "(IMDSv1 answers without a token)")
    hop = get(mo, "httpPutResponseHopLimit")
    if hop is None or float(hop) != 1:
        problems.append(f"{label}: metadataOptions.httpPutResponseHopLimit is {hop!r}, not 1 "
                        "(containers on the host could fetch the instance role's credentials)")
    return problems


def _encrypted(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true")


def ec2_imdsv2_and_encryption(r: Resource, s: Settings) -> list[str]:
    if r.type == EC2_INSTANCE:
        label = f"instance {r.name}"
        problems = _imds_problems(label, get(r.props, "metadataOptions"))
        root = get(r.props, "rootBlockDevice")
        if not isinstance(root, Mapping):
            problems.append(f"{label}: rootBlockDevice not set, so root volume encryption depends on the "
                            "account default; set encrypted: true")
        elif not _encrypted(get(root, "encrypted")):
            problems.append(f"{label}: root volume is not encrypted")
        for i, d in enumerate(get(r.props, "ebsBlockDevices") or []):
            if not _encrypted(get(d, "encrypted")):
                problems.append(f"{label}: ebsBlockDevices[{i}] ({get(d, 'deviceName')}) is not encrypted")
        return problems
    if r.type == EC2_LAUNCH_TEMPLATE:
        label = f"launch template {r.name}"
        problems = _imds_problems(label, get(r.props, "metadataOptions"))
        for i, m in enumerate(get(r.props, "blockDeviceMappings") or []):
            ebs = get(m, "ebs")
            if isinstance(ebs, Mapping) and not _encrypted(get(ebs, "encrypted")):
                problems.append(f"{label}: blockDeviceMappings[{i}] is not encrypted")
        return problems
    if r.type == EBS_VOLUME and not _encrypted(get(r.props, "encrypted")):
        return [f"volume {r.name} is not encrypted"]
    return []
