"""A discrete-event simulation of one platform's nodes through a CI day, comparing placement policies.

`python -m bench.simulate` (or `make simulate`) runs the sweep and writes docs/simulation/. The
modules: calibration (build times from make bench's measured figures), workload (the day's
arrivals), policies (where a build goes), engine (slots, queues, caches), report (metrics, table,
markdown, chart). Seeded: the same seed gives the same figures.
"""
