"""The AWS build-cache repository (`aws.cacheRepository`): an ECR repository for registry cache.

Builds export their layer cache to it (``--cache-to type=registry,...``) and later builds, on any
node, import it (``--cache-from``). A lifecycle policy keeps it from growing forever: untagged
images (superseded cache manifests) go after a day, everything after ``aws.cacheExpireDays`` days
without a new push. Each platform gets its own tag: the nodes of a multi-platform build export
concurrently, and one tag would keep only the last node's cache.

Nodes hold no registry credentials: buildx forwards the client's (``docker login`` / ECR login in
CI) to the node for each build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.platforms import ARCH_OF, Platform


def lifecycle_policy(expire_days: int) -> str:
    """ECR lifecycle rules: untagged images after 1 day, any image `expire_days` after its last push."""
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": "superseded cache manifests",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": 1},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"cache not refreshed for {expire_days} days",
         "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": expire_days},
         "action": {"type": "expire"}},
    ]}, sort_keys=True)


def cache_tag(platform: Platform) -> str:
    return f"cache-{ARCH_OF[platform]}"


def cache_flags(repository_url: str, platforms: list[Platform]) -> dict[str, dict[str, str]]:
    """platform -> ready `--cache-to` / `--cache-from` flags for that platform's build.

    ECR needs the cache as an image manifest with OCI media types (it refuses BuildKit's default
    cache manifest list).
    """
    out: dict[str, dict[str, str]] = {}
    for p in platforms:
        ref = f"{repository_url}:{cache_tag(p)}"
        out[p] = {"cacheTo": f"--cache-to=type=registry,ref={ref},mode=max,image-manifest=true,oci-mediatypes=true",
                  "cacheFrom": f"--cache-from=type=registry,ref={ref}"}
    return out


@dataclass(frozen=True)
class CacheRepositoryArgs:
    name: str
    expire_days: int
    platforms: list[Platform]


class CacheRepository(pulumi.ComponentResource):
    """An ECR repository for build cache, with a lifecycle policy that expires old cache."""

    repository_url: pulumi.Output[str]
    """`<account>.dkr.ecr.<region>.amazonaws.com/<name>`: the cacheRef."""
    flags: pulumi.Output[dict[str, dict[str, str]]]
    """platform -> {cacheTo, cacheFrom}: ready buildx flags."""

    def __init__(self, name: str, args: CacheRepositoryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:CacheRepository", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repo = aws.ecr.Repository(
            f"{name}-repository", name=args.name,
            # cache tags are overwritten by every build
            image_tag_mutability="MUTABLE",
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            # cache only: nothing in it is worth keeping past the stack
            force_delete=True,
            tags={"Name": args.name, "buildkit-farm/role": "build-cache"}, opts=child)
        aws.ecr.LifecyclePolicy(f"{name}-lifecycle", repository=repo.name,
                                policy=lifecycle_policy(args.expire_days), opts=child)
        self.repository_url = repo.repository_url
        self.flags = repo.repository_url.apply(lambda url: cache_flags(url, args.platforms))
        self.register_outputs({"repository_url": self.repository_url})
