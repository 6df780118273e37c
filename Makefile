# The two set-up commands (see README):
#   make farm   bring up the local farm (three test hosts on this machine: h1, h2, h16) and build the sample image
#   make test   all tests: lint, types, unit, real daemons, end to end (the reliability suite reduced)
#   make reliability   the reliability suite with full counts; prints the table of figures
.PHONY: toolchain farm farm-build farm-down test unit lint reliability

toolchain:
	bash toolchain/bootstrap.sh

farm: toolchain
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

# faults, load and bad clients with the full counts (19 min on the shared 2-core machine); ends with the table
reliability: toolchain
	bash scripts/reliability.sh
