"""Kubernetes backend: rootless StatefulSets (adapter.py, components.py) and their manifests
(manifests.py, pod.py, metrics.py: pure functions). Imports nothing itself."""
