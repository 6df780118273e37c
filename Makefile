# The two set-up commands (see README.md):
#   make farm   bring up the local farm (three test hosts on this machine: h1, h2, h16) and build the sample image
#   make test   all tests: lint, types, unit, real daemons, end to end (the reliability suite reduced)
# and, not part of make test:
#   make reliability   the reliability suite with full counts; prints the table of figures
#   make bench  builds a real Go program on a throwaway builder and on the farm, prints the table
#               (BENCH_ARGS="--readme" also rewrites the table in docs/bench/index.md and docs/bench/bench.png;
#               its smoke mode runs in make test)
.PHONY: toolchain toolchain-farm farm farm-build farm-down test unit lint bench reliability simulate

# every part (toolchain/bootstrap.sh all); make farm, bench and reliability build only the farm's part
toolchain:
	bash toolchain/bootstrap.sh all

toolchain-farm:
	bash toolchain/bootstrap.sh farm

farm: toolchain-farm
	bash local/farm.sh up

farm-build:
	bash local/farm.sh build

farm-down:
	bash local/farm.sh down

test: toolchain
	bash scripts/test.sh

# quick loop while editing: lint, types and the unit tier only
unit:
	bash scripts/test.sh unit

# stands up its own farm on test hosts h41/h42 (torn down after); see docs/bench/index.md
bench: toolchain-farm
	bash -c '. .toolchain/env.sh && exec python -m bench.farm_bench $(BENCH_ARGS)'

# placement policies over a simulated CI day (seconds, no hosts): rewrites docs/simulation/
simulate:
	bash -c '. .toolchain/env.sh && exec python -m bench.simulate $(SIM_ARGS)'

# faults, load and bad clients with the full counts (19 min on the shared 2-core machine); ends with the table
reliability: toolchain-farm
	bash scripts/reliability.sh
