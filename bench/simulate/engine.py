"""The discrete-event core: one platform's nodes, each with a few concurrency slots, a FIFO queue
when they are all busy, and an LRU cache of the repositories it built last.

A build is placed when it arrives (the CI job creates its builder then) and stays on that node.
It is warm when its repository is in the node's cache as it starts, else cold; the repository
enters (or refreshes) the cache when the build finishes, evicting the least recently built one
beyond the cache's size. A node in an outage takes no new builds; what it already holds finishes.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.simulate.policies import Policy
from bench.simulate.workload import Build


@dataclass(frozen=True)
class Farm:
    nodes: int
    slots: int = 4  # builds a node runs at once; more wait in its queue
    cache_repos: int = 20  # repositories a node's cache holds before it evicts the least recent
    # (node index, start, end) in seconds of the day: the node takes no new builds meanwhile
    outage: tuple[int, float, float] | None = (0, 12 * 3600.0, 13 * 3600.0)

    def names(self) -> list[str]:
        return [f"amd64-{i}" for i in range(1, self.nodes + 1)]


@dataclass
class Outcome:
    """What happened to one build."""
    build: Build
    node: str
    node_load: int  # running + queued on the chosen node when it was placed
    platform_load: int  # the same summed over the live nodes
    live: int  # live nodes at placement
    start: float = 0.0
    finish: float = 0.0
    warm: bool = False


@dataclass
class _Node:
    running: int = 0
    queue: deque[Outcome] = field(default_factory=deque)
    cache: OrderedDict[str, None] = field(default_factory=OrderedDict)
    busy: float = 0.0


@dataclass
class Run:
    outcomes: list[Outcome]
    busy: dict[str, float]  # seconds of slot time each node spent building


def simulate(builds: Sequence[Build], farm: Farm, policy: Policy) -> Run:
    names = farm.names()
    nodes = {n: _Node() for n in names}
    # a one-node platform has nowhere to fail over to: an outage would only delay every policy alike
    down = farm.outage if farm.outage and farm.nodes > 1 else None
    outcomes: list[Outcome] = []  # in arrival order
    started: list[Outcome] = []  # in start order: a finish event's index
    # (time, kind, index): kind 0 finishes build started[index], kind 1 places builds[index];
    # finishes go first at the same instant, so a freed slot is seen by the arrival
    events: list[tuple[float, int, int]] = [(b.arrival, 1, i) for i, b in enumerate(builds)]
    heapq.heapify(events)

    def start(node: str, o: Outcome, now: float) -> None:
        st = nodes[node]
        st.running += 1
        o.start = now
        o.warm = o.build.repo in st.cache
        took = o.build.warm if o.warm else o.build.cold
        o.finish = now + took
        st.busy += took
        heapq.heappush(events, (o.finish, 0, len(started)))
        started.append(o)

    while events:
        now, kind, i = heapq.heappop(events)
        if kind == 1:
            b = builds[i]
            live = [n for j, n in enumerate(names)
                    if not (down and j == down[0] and down[1] <= now < down[2])]
            loads = {n: nodes[n].running + len(nodes[n].queue) for n in live}
            node = policy(b.repo, live, loads)
            o = Outcome(b, node, loads[node], sum(loads.values()), len(live))
            outcomes.append(o)
            if nodes[node].running < farm.slots:
                start(node, o, now)
            else:
                nodes[node].queue.append(o)
        else:
            o = started[i]
            st = nodes[o.node]
            st.running -= 1
            st.cache[o.build.repo] = None
            st.cache.move_to_end(o.build.repo)
            while len(st.cache) > farm.cache_repos:
                st.cache.popitem(last=False)
            if st.queue:
                start(o.node, st.queue.popleft(), now)
    return Run(outcomes, {n: nodes[n].busy for n in names})
