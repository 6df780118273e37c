"""IAM documents of the AWS backend (pure): what a node may read, and what CI may do to wake nodes."""

from __future__ import annotations

import json
from collections.abc import Sequence

SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
CERT_PARAMETERS = ("ca", "cert", "key")
#: config otel.headers: a SecureString beside the key (OTEL_EXPORTER_OTLP_HEADERS)
OTEL_HEADERS_PARAMETER = "otel-headers"


def parameter_arn(region: str, name: str) -> str:
    # The account is left as `*`: the program never looks it up, and a parameter of another
    # account is out of reach of this role anyway (no cross-account sharing is set up).
    return f"arn:aws:ssm:{region}:*:parameter{name}"


def cert_read_policy(region: str, prefix: str, otel_headers: bool = False) -> str:
    """IAM policy letting a node read exactly its own three cert parameters, and decrypt only
    its own key, whatever else the role holds.

    The role keeps the managed AmazonSSMManagedInstanceCore (Session Manager, and Run Command for
    cert rotation), which allows ssm:GetParameter(s) on every parameter; the two Deny statements
    take that back (an explicit Deny wins over any Allow, including ones AWS adds to the managed
    policy later, and over the aws/ssm key policy that lets every principal of the account decrypt
    through SSM). SSM puts the parameter's ARN in the KMS encryption context (PARAMETER_ARN), so
    the Decrypt conditions name the one SecureString the node owns.

    With ``otel_headers`` (config otel.headers) the node also reads and decrypts its own
    otel-headers SecureString; without, the document is what it always was."""
    extra = (OTEL_HEADERS_PARAMETER,) if otel_headers else ()
    own = [parameter_arn(region, f"{prefix}/{p}") for p in (*CERT_PARAMETERS, *extra)]
    secure = [parameter_arn(region, f"{prefix}/{p}") for p in ("key", *extra)]
    key: str | list[str] = secure[0] if len(secure) == 1 else secure
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadOwnCerts", "Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": own},
            {"Sid": "DecryptOwnKeyViaSsm", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"},
                           "StringLike": {"kms:EncryptionContext:PARAMETER_ARN": key}}},
            {"Sid": "NoOtherParameters", "Effect": "Deny", "Action": ["ssm:GetParameter*"], "NotResource": own},
            # Also denies Decrypt with no PARAMETER_ARN at all (anything not a parameter; Session
            # Manager's optional KMS session encryption would need its key excepted here).
            {"Sid": "NoOtherDecrypt", "Effect": "Deny", "Action": ["kms:Decrypt"], "Resource": "*",
             "Condition": {"StringNotLike": {"kms:EncryptionContext:PARAMETER_ARN": key}}},
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
