"""examples/prometheus: the alert rules are valid, fire on what they watch, and read only series that exist."""

from __future__ import annotations

import re
from pathlib import Path

from components.node import metrics_proxy as mp
from harness.hosts import need, run

PROMETHEUS = Path(__file__).resolve().parents[2] / "examples" / "prometheus"


def test_alert_rules_are_valid_and_fire_on_what_they_watch() -> None:
    promtool = need("promtool")["promtool"]
    run([promtool, "check", "rules", str(PROMETHEUS / "alerts.yml")])
    # the rules' own unit tests: each alert fires on its series after its `for`, and not before
    out = run([promtool, "test", "rules", str(PROMETHEUS / "alerts.test.yml")]).stdout
    assert "SUCCESS" in out, out
    config = run([promtool, "check", "config", "--syntax-only", str(PROMETHEUS / "prometheus.yml")], check=False)
    assert config.returncode == 0, config.stdout + config.stderr


def alert_metric_names() -> set[str]:
    """The series the alert rules read (besides Prometheus' own `up`)."""
    return set(re.findall(r"\b((?:bkf|buildkit)_[a-z_]+)\b", (PROMETHEUS / "alerts.yml").read_text()))


def test_the_rules_read_only_series_the_proxy_writes() -> None:
    names = alert_metric_names()
    assert names == {"bkf_daemon_up", "bkf_state_volume_used_bytes", "bkf_gc_max_used_bytes",
                     "bkf_tls_cert_not_after_timestamp_seconds"}
    source = Path(mp.__file__).read_text()
    assert all(f'"{n}"' in source for n in names)
