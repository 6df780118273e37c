"""AWS backend: EC2 nodes whose cache outlives the instance (adapter.py, components.py), their IAM
documents (iam.py) and the ECR build-cache repository (cache.py). Imports nothing itself."""
