"""buildkit-farm: a remote BuildKit farm and a ready multi-node buildx builder.

Thin on purpose: stack config -> validated models (every problem reported before
any resource exists) -> one BuildkitFarm component -> stack outputs.
"""

from __future__ import annotations

import pulumi

from components.backends import read_inputs
from components.config import ConfigError, parse_config, read_raw_config
from components.farm import BuildkitFarm, FarmArgs
from components.outputs import export_outputs


def main() -> None:
    stack = pulumi.get_stack()
    try:
        cfg = parse_config(read_raw_config(pulumi.Config().get), aws_region=pulumi.Config("aws").get("region"))
        inputs = read_inputs(cfg, stack)
    except ConfigError as e:
        raise pulumi.RunError(str(e)) from None
    farm = BuildkitFarm("bkf", FarmArgs(
        config=cfg, inputs=inputs, organization=f"buildkit-farm {pulumi.get_project()}/{stack}",
        default_builder_name=f"bkf-{stack}",
        # stacks made before the farm was one component keep their resources (no diff)
        adopt_root_resources=True))
    export_outputs(farm)


main()
