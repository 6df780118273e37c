"""The test farm harness: test hosts, test stacks and farms, shared by every test tier and the bench.

hosts.py: the test hosts (local/testhosts.sh), real binaries, openssl certificates, the artifact;
stack.py: a Pulumi stack on a local file backend, always torn down; farm.py: a farm the real
program stands up on test hosts, with its client files and buildx/buildctl helpers;
dockerd.py: a Docker engine of one's own (the `--load` test and the bench's scenario 10);
versions.py: toolchain/versions.env.
"""
