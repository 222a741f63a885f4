.PHONY: run test build bench lint test-faults test-deploy clean

## make run: the whole stack locally (Redis, PostgreSQL, services, twilio-sim, echo agent); Ctrl-C stops it.
run:
	bash scripts/run.sh

## make test: every test against a real Redis and PostgreSQL (started if needed), plus static checks.
test:
	bash scripts/test.sh

## make build: a debug build with the tests (installs the C libraries the services link first).
build:
	bash scripts/deps.sh && swift build --build-tests

## make bench: the benchmark table (bus, messaging, voice) next to this machine's ceilings.
bench:
	bash scripts/bench.sh

lint:
	bash scripts/lint.sh

clean:
	bash scripts/stack.sh stop || true
	rm -rf .run

## make test-faults: services killed with SIGKILL under load; prints the fault table (lost / duplicated).
test-faults:
	AGENTCONNECT_FAULTS=1 AGENTCONNECT_TEST_FILTER=FaultTests bash scripts/test.sh

## make test-deploy: builds deploy/Dockerfile and runs compose.yaml in podman (SMS and calls through
## the edge with twilio-sim, then scaled to 2); validates the Kubernetes manifests; prints a table.
test-deploy:
	bash scripts/test-deploy.sh
