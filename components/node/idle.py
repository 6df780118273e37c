"""Idle stop on the node (config `idleStop`, off by default): rendered only when it is on.

`bkf-idle.sh` reads the daemon's own build history over its unix socket. A build without a
completion time is in flight: the node stays up. Otherwise the idle clock runs from the newer
of the last build's end and the first check after boot (or after enable, or after the last
stop, or after the daemon last failed to answer), so a node CI has just woken is not stopped
before its build arrives. Past the limit
it reads the history once more (a build that started meanwhile keeps the node up) and runs
the stop command (aws: `systemctl poweroff`, the instance stops; ssh: the configured one).
A daemon that does not answer is never a reason to stop. An install without idleStop (the
env file newer than the marker the payload writes last) makes the check disable itself.

systemd hosts run it from bkf-idle.timer; hosts without systemd (the test hosts) from a
detached loop. Nothing here touches bkf-node.sh: a farm with idleStop off renders the
payload it always had.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from components.node.layout import ENV_FILE, INSTALL_DIR
from components.node.settings import Init, NodeSettings

IDLE_SCRIPT = f"{INSTALL_DIR}/bkf-idle.sh"
IDLE_LOG = "/var/log/buildkit-farm/idle.log"
#: written by the payload after the env file: an install without idleStop leaves the env file newer
IDLE_MARKER = f"{INSTALL_DIR}/bkf-idle.on"
DEFAULT_STOP_COMMAND = "systemctl poweroff"


@dataclass(frozen=True)
class IdleStop:
    after_s: int
    every_s: int
    command: str = DEFAULT_STOP_COMMAND


def render_idle_units(idle: IdleStop) -> tuple[str, str]:
    service = f"""# Rendered by buildkit-farm (idleStop): one idle check.
[Unit]
Description=buildkit-farm idle check (stop after {idle.after_s}s without builds)
After=buildkitd.service

[Service]
Type=oneshot
ExecStart={IDLE_SCRIPT} check
"""
    timer = f"""# Rendered by buildkit-farm (idleStop).
[Unit]
Description=buildkit-farm idle check every {idle.every_s}s

[Timer]
OnBootSec={idle.every_s}s
OnUnitActiveSec={idle.every_s}s
AccuracySec=1s

[Install]
WantedBy=timers.target
"""
    return service, timer


def render_idle_script(idle: IdleStop, settings: NodeSettings) -> str:
    run_dir = settings.layout.run_dir
    init: Init = settings.init
    use_systemd = {"systemd": "true", "none": "false", "auto": "[ -d /run/systemd/system ]"}[init]
    fmt = "{{if .Record.CompletedAt}}done {{.Record.CompletedAt.Seconds}}{{else}}running{{end}}"
    return f"""#!/bin/bash
# Rendered by buildkit-farm (idleStop): stop this node after {idle.after_s}s with no build
# running or finished. bkf-idle.sh check|loop|enable|disable
set -euo pipefail
# buildctl is the one bkf-node.sh installed
export PATH="{INSTALL_DIR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
AFTER_S={idle.after_s}
EVERY_S={idle.every_s}
STOP_COMMAND={shlex.quote(idle.command)}
SOCK={shlex.quote(settings.layout.socket_path)}
SINCE={run_dir}/bkf-idle.since
PID_FILE={run_dir}/bkf-idle.pid
log() {{ printf '%s bkf-idle[{settings.node_name}]: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }}
use_systemd() {{ {use_systemd}; }}

# "busy" while a build is in flight, else the newest build end (epoch seconds, 0: none)
activity() {{
  local out
  # (on failure: the error's last line, for the log)
  out=$(buildctl --addr "unix://$SOCK" --timeout 10 debug histories --format '{fmt}' 2>&1) ||
    {{ tail -n 1 <<<"$out"; return 1; }}
  if grep -q '^running' <<<"$out"; then echo busy; return 0; fi
  awk '$1=="done" && $2+0>m {{m=$2+0}} END {{print m+0}}' <<<"$out"
}}

check() {{
  local now since a last idle
  if [ ! -e {IDLE_MARKER} ] || [ {ENV_FILE} -nt {IDLE_MARKER} ]; then
    log "idleStop is off in this node's current settings: disabling the idle check"
    disable
    exit 0
  fi
  mkdir -p {run_dir}
  if ! a=$(activity); then
    # down (stopped, restarting): never a reason to stop; the idle clock restarts when it answers
    if [ -e "$SINCE" ]; then log "the daemon does not answer ($a): not stopping"; rm -f "$SINCE"; fi
    return 0
  fi
  now=$(date +%s)
  [ -s "$SINCE" ] || echo "$now" >"$SINCE"
  since=$(cat "$SINCE")
  [ "$a" != busy ] || return 0
  last=$(( a > since ? a : since ))
  idle=$(( now - last ))
  [ "$idle" -ge "$AFTER_S" ] || return 0
  # once more, right before stopping: a build that started meanwhile keeps the node up
  a=$(activity) || return 0
  if [ "$a" = busy ] || [ "$a" -gt "$last" ]; then return 0; fi
  log "no build for ${{idle}}s (limit ${{AFTER_S}}s): $STOP_COMMAND"
  rm -f "$SINCE"
  # shellcheck disable=SC2086 # the command and its arguments
  $STOP_COMMAND
}}

loop() {{
  echo $$ >"$PID_FILE"
  while :; do check || log "check failed"; sleep "$EVERY_S"; done
}}

stop_loop() {{
  if [ -s "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then kill "$(cat "$PID_FILE")"; fi
  rm -f "$PID_FILE"
}}

enable() {{
  mkdir -p {run_dir} "$(dirname {IDLE_LOG})"
  rm -f "$SINCE"
  if use_systemd; then
    install -m 0644 {INSTALL_DIR}/bkf-idle.service /etc/systemd/system/bkf-idle.service
    install -m 0644 {INSTALL_DIR}/bkf-idle.timer /etc/systemd/system/bkf-idle.timer
    systemctl daemon-reload
    systemctl enable --now bkf-idle.timer >/dev/null
  else
    stop_loop
    setsid {IDLE_SCRIPT} loop </dev/null >>{IDLE_LOG} 2>&1 &
  fi
  log "idle stop on: after ${{AFTER_S}}s without builds, checked every ${{EVERY_S}}s"
}}

disable() {{
  if use_systemd; then
    systemctl disable --now bkf-idle.timer >/dev/null 2>&1 || true
    rm -f /etc/systemd/system/bkf-idle.service /etc/systemd/system/bkf-idle.timer
    systemctl daemon-reload || true
  else
    stop_loop
  fi
  rm -f "$SINCE"
}}

case "${{1:-}}" in
  check) check ;;
  loop) loop ;;
  enable) enable ;;
  disable) disable ;;
  *) echo "usage: $0 check|loop|enable|disable" >&2; exit 2 ;;
esac
"""
