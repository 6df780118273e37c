"""The optional ECR build-cache repository (aws.cacheRepository), under mocks."""

from __future__ import annotations

import json

import pytest

from components.backends.aws.cache import cache_flags, lifecycle_policy
from components.config import ConfigError
from tests.unit import mockrt
from tests.unit.test_aws import DEV, with_aws
from tests.unit.test_config import aws_raw, problems
from tests.unit.test_program import EXPORTS

URL = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/buildkit-farm/cache"


@pytest.fixture(scope="module")
def cached() -> mockrt.Run:
    return mockrt.run_main(with_aws(cacheRepository="buildkit-farm/cache", cacheExpireDays=7))


def test_repository_and_lifecycle_rule(cached: mockrt.Run) -> None:
    (repo,) = cached.of_type("aws:ecr/repository:Repository")
    assert repo.inputs["name"] == "buildkit-farm/cache"
    assert repo.inputs["imageTagMutability"] == "MUTABLE"
    assert repo.inputs["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    (policy,) = cached.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    rules = json.loads(policy.inputs["policy"])["rules"]
    assert [(r["selection"]["tagStatus"], r["selection"]["countNumber"], r["action"]["type"]) for r in rules] == [
        ("untagged", 1, "expire"), ("any", 7, "expire")]
    assert all(r["selection"]["countType"] == "sinceImagePushed" for r in rules)
    # the repository is the farm's child, named like the farm's other children
    assert "cache-repository" in cached.names() and "cache-lifecycle" in cached.names()


def test_cache_ref_and_ready_flags_are_exported(cached: mockrt.Run) -> None:
    assert set(cached.values) == EXPORTS | {"cacheRef", "cacheFlags"}
    assert cached.values["cacheRef"] == URL
    assert cached.values["cacheFlags"] == {
        "linux/arm64": {
            "cacheTo": f"--cache-to=type=registry,ref={URL}:cache-arm64,mode=max,image-manifest=true,"
                       "oci-mediatypes=true",
            "cacheFrom": f"--cache-from=type=registry,ref={URL}:cache-arm64"},
        "linux/amd64": {
            "cacheTo": f"--cache-to=type=registry,ref={URL}:cache-amd64,mode=max,image-manifest=true,"
                       "oci-mediatypes=true",
            "cacheFrom": f"--cache-from=type=registry,ref={URL}:cache-amd64"},
    }


def test_no_repository_and_no_cache_outputs_by_default() -> None:
    run = mockrt.run_main(DEV)
    assert not run.of_type("aws:ecr/repository:Repository")
    assert set(run.values) == EXPORTS


@pytest.mark.parametrize(("aws", "expected"), [
    ({"cacheRepository": "Bad_Name"}, "aws.cacheRepository: 'Bad_Name' is not an ECR repository name"),
    ({"cacheRepository": "x"}, "aws.cacheRepository: 'x' is not an ECR repository name"),
    ({"cacheExpireDays": 0}, "aws.cacheExpireDays: 0 is not an integer from 1 to 365 days"),
])
def test_bad_cache_settings_are_config_errors(aws: dict, expected: str) -> None:
    found = problems(aws_raw(aws=aws))
    assert any(p.startswith(expected) for p in found), found


def test_pure_helpers() -> None:
    assert json.loads(lifecycle_policy(3))["rules"][1]["selection"]["countNumber"] == 3
    assert set(cache_flags("r/x", ["linux/amd64"])) == {"linux/amd64"}
    with pytest.raises(ConfigError):
        from components.config import parse_config
        parse_config(aws_raw(aws={"cacheRepository": "UPPER"}), aws_region="us-east-1")
