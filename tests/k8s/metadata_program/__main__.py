"""StatefulSets awaited as the farm's nodes are (components/backends/kubernetes/pod.await_annotations),
whose only change from one `up` to the next is a label (config `label`): the case where the provider's
watch can hand back the object from before the patch (see pod.METADATA_DIGEST). The pause image the
local cluster imports; `count` StatefulSets in namespace `namespace`."""

import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from components.backends.kubernetes.pod import ROLLED_OUT, await_annotations

cfg = pulumi.Config()
namespace = cfg.require("namespace")
ns = k8s.core.v1.Namespace("namespace", metadata={"name": namespace})
for i in range(cfg.require_int("count")):
    name = f"s{i}"
    labels = {"app": name, "bkf-test/label": cfg.require("label")}
    k8s.apps.v1.StatefulSet(
        name,
        metadata={"name": name, "namespace": namespace, "labels": labels,
                  "annotations": await_annotations(labels, ROLLED_OUT)},
        spec={"replicas": 1, "serviceName": name, "selector": {"matchLabels": {"app": name}},
              "template": {"metadata": {"labels": {"app": name}}, "spec": {
                  "terminationGracePeriodSeconds": 0,
                  "containers": [{"name": "pause", "image": "registry.k8s.io/pause:bkf-local",
                                  "imagePullPolicy": "Never",
                                  "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}}}]}}},
        opts=pulumi.ResourceOptions(parent=ns))
