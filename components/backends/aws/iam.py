"""IAM documents of the AWS backend (pure): what a node may read, and what CI may do to wake nodes."""

from __future__ import annotations

import json
from collections.abc import Sequence

SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def cert_read_policy(region: str, prefix: str) -> str:
    """IAM policy letting a node read only its own cert parameters."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadOwnCerts", "Effect": "Allow", "Action": ["ssm:GetParameter"],
             "Resource": f"arn:aws:ssm:{region}:*:parameter{prefix}/*"},
            {"Sid": "DecryptViaSsm", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"}}},
        ],
    }, sort_keys=True)


ASSUME_EC2 = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                   "Principal": {"Service": "ec2.amazonaws.com"}}],
}, sort_keys=True)


def ci_wake_policy(region: str, instance_ids: Sequence[str]) -> str:
    """The least-privilege policy CI needs to wake the farm (idleStop): start exactly the farm's
    instances, and describe instances (EC2 has no resource-level permission for Describe*; it
    reveals state, never contents)."""
    arns = sorted(f"arn:aws:ec2:{region}:*:instance/{i}" for i in instance_ids)
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "StartFarmInstances", "Effect": "Allow", "Action": ["ec2:StartInstances"], "Resource": arns},
            {"Sid": "SeeTheirState", "Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"},
        ],
    }, sort_keys=True)
