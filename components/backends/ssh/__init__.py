"""SSH backend: nodes on existing hosts (adapter.py, components.py), the files the config points
at (inputs.py) and the SFTP check before an artifact copy (sftp.py). Imports nothing itself."""
