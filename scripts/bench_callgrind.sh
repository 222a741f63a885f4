#!/usr/bin/env bash
# Instructions per message on the bus hot path, under valgrind's callgrind (stable run to run, unlike
# time): `agentconnect-bench hotpath` runs a message's bus work in one process (ingress's deduplicated
# publish; a worker's group read, fenced reply publish and ack; outbound's read and ack) for two
# message counts, and the difference of the instruction counts over the difference of the messages
# is the figure (start-up cancels out). Prints ROW lines for bench_table.py, with tasks on Swift's own
# executor and on an event loop as the services run them, and keeps the larger runs' profiles in
# bench-results/callgrind.hotpath*.out (read them with callgrind_annotate).
# Usage: scripts/bench_callgrind.sh [bin-dir]   (AC_REDIS_PORT: Redis, default 16379; database 1021)
# valgrind (3.19 and 3.24 alike) cannot read the DWARF 5 debug info Swift emits, so it runs a copy
# without it (function names come from the symbol table), and with Swift's backtracer off (its
# signal handling, like dispatch_main's sigsuspend, trips valgrind).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${1:-$(swift build -c release --show-bin-path)}
redis_port=${AC_REDIS_PORT:-16379}
small=${CALLGRIND_SMALL:-200}
large=${CALLGRIND_LARGE:-1200}
out=bench-results
mkdir -p "$out"
if ! command -v valgrind >/dev/null; then
  echo "ROW|bus hot path instructions per message (callgrind)|–|valgrind not installed"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
objcopy --strip-debug "$bin/agentconnect-bench" "$tmp/agentconnect-bench"
# $1 messages, $2 profile file, $3 the executor running the tasks (agentconnect-bench hotpath --help).
instructions() {
  SWIFT_BACKTRACE=enable=no valgrind --tool=callgrind --callgrind-out-file="$2" "$tmp/agentconnect-bench" hotpath \
    --redis-url "redis://127.0.0.1:$redis_port/1021" --messages "$1" --executor "$3" 2>&1 | grep -oE 'Collected : [0-9]+' | grep -oE '[0-9]+'
}
# $1 executor: instructions per message, the larger run's profile kept as $2.
per_message() {
  a=$(instructions "$small" "$tmp/small.out" "$1")
  b=$(instructions "$large" "$tmp/large.out" "$1")
  cp "$tmp/large.out" "$2"
  echo $(( (b - a) / (large - small) ))
}
# Swift's own executor (the figure's history since session 17), then the services' own (one SwiftNIO
# event loop running each job as the generic executor, EventLoopGlobalExecutor).
per=$(per_message dispatch "$out/callgrind.hotpath.out")
echo "ROW|bus hot path instructions per message, callgrind (ingress publish; worker read, reply, ack; outbound read, ack)|$per|"
per=$(per_message event-loops "$out/callgrind.hotpath.event-loops.out")
echo "ROW|bus hot path instructions per message, callgrind, tasks on an event loop as the services run them|$per|"
