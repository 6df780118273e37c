"""The SSH host check that runs before a node's artifact is copied (ssh.artifactDir set).

pulumi-command's CopyToRemote copies over SFTP: on a host whose sshd has no sftp subsystem it
fails with x/crypto's bare "ssh: subsystem request failed", naming neither the host's config nor
a way out. The step before the copy (which makes the artifact directory) asks the sshd serving
its own session: it walks up its process ancestors to the listening sshd, takes that daemon's
config file (`-f`, else the default) and reads the effective `Subsystem` lines with `sshd -T`
(a config path with spaces is not supported: sshd's process title is split on them).
When it cannot tell (not root, an unreadable config), it says so and lets the copy decide.
"""

from __future__ import annotations

import shlex

#: what the check prints before it fails (tests look for it)
NO_SFTP_MESSAGE = "has no sftp subsystem"


def render_artifact_dir_script(artifact_dir: str, host: str) -> str:
    """Remote sh: make `artifact_dir`, then fail with a clear message if the copy cannot work."""
    return f"""set -eu
mkdir -p {shlex.quote(artifact_dir)}
# the listening sshd: the topmost ancestor named sshd (sessions below it are sshd or sshd-session)
pid=$$ listener=""
while [ "$pid" -gt 1 ] && [ -r "/proc/$pid/status" ]; do
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != sshd ] || listener=$pid
  pid=$(awk '/^PPid:/ {{print $2}}' "/proc/$pid/status")
done
found=0 sshd="" cfg=""
if [ -n "$listener" ]; then
  found=1
  sshd=$(readlink "/proc/$listener/exe" 2>/dev/null || echo sshd)
  # its -f: from its arguments, or from the title sshd gives itself ("sshd: /usr/sbin/sshd -f F [listener] ...")
  cfg=$(tr '\\0' '\\n' <"/proc/$listener/cmdline" | tr ' ' '\\n' |
    awk 'p {{print; exit}} $0 == "-f" {{p = 1; next}} /^-f./ {{print substr($0, 3); exit}}')
  cfg=${{cfg:-/etc/ssh/sshd_config}}
fi
if [ "$found" = 0 ]; then
  echo "bkf: cannot find the sshd serving this session; not checking for an sftp subsystem" >&2
  exit 0
fi
if ! effective=$("$sshd" -T -f "$cfg" 2>/dev/null); then
  echo "bkf: cannot read sshd's effective config ($cfg); not checking for an sftp subsystem" >&2
  exit 0
fi
if ! printf '%s\\n' "$effective" | grep -qi '^subsystem sftp '; then
  echo "bkf: {host}: this host's sshd ($cfg) {NO_SFTP_MESSAGE}. The buildkit artifact is copied next over" \\
    "SFTP (pulumi-command CopyToRemote), which would fail with 'ssh: subsystem request failed'. Add" \\
    "'Subsystem sftp internal-sftp' to $cfg and reload sshd, or unset ssh.artifactDir so the host" \\
    "downloads the release itself." >&2
  exit 1
fi
"""
