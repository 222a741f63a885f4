#!/usr/bin/env bash
# `make test`: starts Redis and PostgreSQL if they are not running, builds, runs every test (unit,
# integration against real processes, static checks), and stops what it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps.sh test
started=0
# A stack started here skips fsync (see stack.sh), except for the fault suite, which kills Redis and
# PostgreSQL as configured in production.
if [ "${AGENTCONNECT_FAULTS:-}" != 1 ]; then export AC_STACK_SYNC=${AC_STACK_SYNC:-fast}; fi
if bash scripts/stack.sh status; then
  if [ "${AGENTCONNECT_FAULTS:-}" = 1 ] && [ "$(bash scripts/stack.sh mode)" = fast ]; then
    echo "warning: the running stack skips fsync (AC_STACK_SYNC=fast); the fault suite then checks less than production's settings (stop it first: bash scripts/stack.sh stop)" >&2
  fi
  # A stack started before it had one gets the calls' Redis (the fault suite restarts it); the rest is left as it runs.
  bash scripts/stack.sh start || echo "warning: the calls' Redis did not start (see above); the fault suite needs it" >&2
else
  bash scripts/stack.sh start
  started=1
fi
finish() {
  # A test run that was interrupted can leave service processes behind; stop them.
  if [ -n "${AGENTCONNECT_BIN_DIR:-}" ]; then pkill -f "^$AGENTCONNECT_BIN_DIR/" 2>/dev/null || true; fi
  # The Redis-restart tests' own daemons (ports 21000-28999; never the stack's 16379).
  pkill -9 -f "redis-server 127.0.0.1:2[1-8][0-9][0-9][0-9]" 2>/dev/null || true
  [ "$started" -eq 1 ] && bash scripts/stack.sh stop
  return 0
}
trap finish EXIT
# What earlier runs left: each integration test makes its own database (test_*, harness_*) and log folder
# (agentconnect-test-*), kept after the run for reading a failure. Only the last run's are kept.
pg_port=${AC_PG_PORT:-15432}
for db in $(psql -h 127.0.0.1 -p "$pg_port" -U agentconnect -d postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%' OR datname LIKE 'harness\\_%'" 2>/dev/null); do
  psql -h 127.0.0.1 -p "$pg_port" -U agentconnect -d postgres -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
done
rm -rf "${TMPDIR:-/tmp}"/agentconnect-test-* "${TMPDIR:-/tmp}"/agentconnect-harness-* "${TMPDIR:-/tmp}"/agentconnect-redis-* 2>/dev/null || true
swift build --build-tests
export AGENTCONNECT_BIN_DIR
AGENTCONNECT_BIN_DIR=$(swift build --show-bin-path)
export AC_REDIS_PORT=${AC_REDIS_PORT:-16379} AC_PG_PORT=${AC_PG_PORT:-15432}
set +e
# At most AGENTCONNECT_TEST_WIDTH tests at once (default 6): each integration test starts its own
# services, and ~200 stacks at once on two cores starve the partition leases (1.5 s in tests) and
# time out what they were meant to test.
swift test --skip-build ${AGENTCONNECT_TEST_FILTER:+--filter "$AGENTCONNECT_TEST_FILTER"} \
  --experimental-maximum-parallelization-width "${AGENTCONNECT_TEST_WIDTH:-6}" 2>&1 | tee .run/test.log
status=${PIPESTATUS[0]}
set -e
if [ -x scripts/lint.sh ]; then bash scripts/lint.sh || status=1; fi
exit "$status"
