"""Farm status from what a daemon answers (recorded buildctl JSON; the e2e tier asks live daemons)."""

from __future__ import annotations

from typing import Any

from components.status import NodeStatus, gc_limit, render_table, summarize

INFO = {"buildkitVersion": {"package": "github.com/moby/buildkit", "version": "v0.32.2"}}
WORKERS: list[dict[str, Any]] = [{
            "platforms": [{"architecture": "amd64", "os": "linux"},
                          {"architecture": "amd64", "os": "linux", "variant": "v2"}],
            "gcPolicy": [{"all": False, "filter": ["type==exec.cachemount"], "maxUsedSpace": 512000000},
                         {"all": False, "maxUsedSpace": 100000000000},
                         {"all": True, "maxUsedSpace": 17179869184}]}]
DU = [{"id": "a", "size": 4096}, {"id": "b", "size": 8192}]
HIST: list[dict[str, Any]] = [
    {"type": 1, "record": {"Ref": "x", "CreatedAt": {"seconds": 1795507216},
                           "CompletedAt": {"seconds": 1795507216, "nanos": 974974677}}},
    {"type": 1, "record": {"Ref": "y", "CreatedAt": {"seconds": 1795507222},
                           "CompletedAt": {"seconds": 1795507231, "nanos": 89146663}}},
    # in flight: no CompletedAt (and no type), as `buildctl debug histories` shows it
    {"record": {"Ref": "z", "CreatedAt": {"seconds": 1795507229, "nanos": 38834954}}},
]


def test_summary_of_a_daemons_answers() -> None:
    s = summarize(INFO, WORKERS, DU, HIST)
    assert s == {"version": "v0.32.2", "platforms": ["linux/amd64", "linux/amd64/v2"], "cache_bytes": 12288,
                 "gc_limit_bytes": 17179869184, "running": 1, "last_build": "2026-11-24T08:00:31Z"}


def test_an_idle_empty_daemon() -> None:
    s = summarize(INFO, WORKERS, None, [])
    assert (s["cache_bytes"], s["running"], s["last_build"]) == (0, 0, None)


def test_gc_limit_is_the_all_rule_or_the_last() -> None:
    assert gc_limit(WORKERS[0]["gcPolicy"]) == 17179869184
    assert gc_limit([{"maxUsedSpace": 1}, {"maxUsedSpace": 2}]) == 2
    assert gc_limit([]) is None


def test_table_shows_a_down_node_and_its_real_error() -> None:
    up = NodeStatus("amd64-1", "linux/amd64", "tcp://a:1234", True, "", "v0.32.2", ["linux/amd64"], 12288,
                    17179869184, 0, "2026-11-24T08:00:31Z", "2026-12-24T08:02:00Z")
    down = NodeStatus("amd64-2", "linux/amd64", "tcp://b:1234", error="connect: connection refused")
    t = render_table([up, down]).splitlines()
    assert t[0].split()[:3] == ["NODE", "PLATFORM", "STATE"]
    assert t[1].split() == ["amd64-1", "linux/amd64", "up", "v0.32.2", "linux/amd64", "12.3", "kB", "17.2", "GB",
                            "0", "2026-11-24T08:00:31Z", "2026-12-24T08:02:00Z"]
    assert t[2].split()[:3] == ["amd64-2", "linux/amd64", "DOWN"]
    assert t[3] == "amd64-2 (tcp://b:1234): connect: connection refused"
