#!/usr/bin/env bash
# `make bench`: builds release, starts Redis/PostgreSQL (if needed) and the services on their own
# ports, drives them with agentconnect-bench, and prints one table of figures next to this
# machine's ceilings measured in the same run. The table is also written to bench-results/latest.md,
# with each service's CPU time per message and per voice turn (from /proc/<pid>/stat) and the bus hot
# path's instructions per message under callgrind (scripts/bench_callgrind.sh), the PostgreSQL client's
# CPU per statement (`agentconnect-bench pool`, with the bus), the machine's CPU per thread wake-up
# (`agentconnect-bench wakeup`, with the ceilings); a sweep of offered
# load (messaging 100 → 4,000 messages/s, voice 100 → 2,000 calls) is drawn as bench-results/sweep.svg.
#
# BENCH_QUICK=1: a shorter run for development (fewer seconds per step, voice up to 1,000 calls, 2,000
# idle calls, no ceilings). BENCH_NO_BUILD=1: use the release binaries as they are. BENCH_PARTS: which
# parts to run (default all: "ceilings bus callgrind messaging voice"), e.g. BENCH_PARTS=messaging to
# compare one change; BENCH_OUT: where the table and chart go (default bench-results).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps.sh
started=0
# A running stack is used as it is, with the calls' Redis added when it has none yet.
if bash scripts/stack.sh status; then bash scripts/stack.sh start; else bash scripts/stack.sh start; started=1; fi
pids=()
cleanup() {
  [ -n "${voice_fsync:-}" ] && { redis-cli -p "$voice_redis_port" CONFIG SET appendfsync "$voice_fsync" >/dev/null 2>&1 || true; }
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$started" -eq 1 ] && bash scripts/stack.sh stop
  return 0
}
trap cleanup EXIT
[ "${BENCH_NO_BUILD:-0}" = 1 ] || swift build -c release
quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
  msg_seconds=5; sweep_seconds=3; voice_calls="100 200 500 1000"; idle_calls=${BENCH_IDLE_CALLS:-2000}
else
  msg_seconds=10; sweep_seconds=4; voice_calls="100 200 500 1000 2000"; idle_calls=${BENCH_IDLE_CALLS:-10000}
fi
bin=$(swift build -c release --show-bin-path)
redis_port=${AC_REDIS_PORT:-16379}
voice_redis_port=${AC_VOICE_REDIS_PORT:-$((redis_port + 1))}
pg_port=${AC_PG_PORT:-15432}
out=${BENCH_OUT:-bench-results}
parts=" ${BENCH_PARTS:-ceilings bus callgrind messaging voice} "
part() { [[ "$parts" == *" $1 "* ]]; }
mkdir -p "$out"
rows="$out/rows.txt"
: >"$rows"

# Databases 1020-1023: the tests take 1-1000 (scripts/stack.sh starts Redis with 1024).
bus_db=1022
stack_db=1020
redis_pid=$(redis-cli -p "$redis_port" INFO server | tr -d '\r' | grep '^process_id:' | cut -d: -f2)
voice_redis_pid=$(redis-cli -p "$voice_redis_port" INFO server | tr -d '\r' | grep '^process_id:' | cut -d: -f2)
echo "LOAD|start|$(cut -d' ' -f1-3 /proc/loadavg)" >>"$rows"

if part ceilings; then
echo "== ceilings: redis-benchmark XADD (non-pipelined)"
rb50=$(redis-benchmark -p "$redis_port" -q -n 200000 -c 50 XADD bench:rb '*' f v | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1)
rb1=$(redis-benchmark -p "$redis_port" -q -n 30000 -c 1 XADD bench:rb '*' f v | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1)
redis-cli -p "$redis_port" DEL bench:rb >/dev/null
echo "ROW|ceiling: redis-benchmark XADD, 50 clients (ops/s)|${rb50%.*}|" >>"$rows"
echo "ROW|ceiling: redis-benchmark XADD, 1 client (ops/s)|${rb1%.*}|" >>"$rows"
echo "== ceilings: CPU per thread wake-up"
"$bin/agentconnect-bench" wakeup | tee -a "$rows" | grep ROW || true
fi

if part bus; then
echo "== bus"
redis-cli -p "$redis_port" -n "$bus_db" FLUSHDB >/dev/null
"$bin/agentconnect-bench" bus --redis-url "redis://127.0.0.1:$redis_port/$bus_db" | tee -a "$rows" | grep ROW || true
# The same on the calls' Redis (appendfsync everysec: nothing waits for the disk), the voice path's bus.
echo "== bus on the calls' Redis"
redis-cli -p "$voice_redis_port" -n "$bus_db" FLUSHDB >/dev/null
"$bin/agentconnect-bench" bus --redis-url "redis://127.0.0.1:$voice_redis_port/$bus_db" \
  | grep -E "^ROW\|bus publish" | sed "s/^ROW|bus /ROW|bus on the calls' Redis (appendfsync $(redis-cli -p "$voice_redis_port" CONFIG GET appendfsync | tail -n1)): /" \
  | tee -a "$rows" | grep ROW || true
echo "== PostgreSQL client per statement"
"$bin/agentconnect-bench" pool --database-url "postgres://agentconnect@127.0.0.1:$pg_port/postgres" | tee -a "$rows" | grep ROW || true
fi
if part callgrind; then
echo "== bus hot path under callgrind"
AC_REDIS_PORT=$redis_port bash scripts/bench_callgrind.sh "$bin" | tee -a "$rows" || true
fi

echo "== starting the stack (release)"
redis-cli -p "$redis_port" -n "$stack_db" FLUSHDB >/dev/null
redis-cli -p "$voice_redis_port" -n "$stack_db" FLUSHDB >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U agentconnect -d postgres -qc "DROP DATABASE IF EXISTS agentconnect_bench" >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U agentconnect -d postgres -qc "CREATE DATABASE agentconnect_bench" >/dev/null
set -a
. deploy/local.env
REDIS_URL="redis://127.0.0.1:$redis_port/$stack_db"
# Calls on a Redis of their own, as compose and `make run` ship them.
VOICE_REDIS_URL="redis://127.0.0.1:$voice_redis_port/$stack_db"
DATABASE_URL="postgres://agentconnect@127.0.0.1:$pg_port/agentconnect_bench"
TWILIO_CONVERSATIONS_BASE_URL=http://127.0.0.1:19190
TWILIO_API_BASE_URL=http://127.0.0.1:19190
TWILIO_CONVERSATION_CONFIGURATION_ID=
TWILIO_VOICE_PUBLIC_DOMAIN=127.0.0.1:18081
# The level and format compose.yaml ships (per-message lines are debug).
LOG_LEVEL=info
LOG_FORMAT=json
set +a
"$bin/migrate" >/dev/null 2>&1
HTTP_PORT=18082 "$bin/messaging-ingress" >"$out/messaging-ingress.log" 2>&1 & pids+=($!)
ingress_pid=$!
HTTP_PORT=18083 "$bin/outbound" >"$out/outbound.log" 2>&1 & pids+=($!)
outbound_pid=$!
HTTP_PORT=18084 INSTANCE_ID=bench-worker "$bin/agent-worker" >"$out/agent-worker.log" 2>&1 & pids+=($!)
worker_pid=$!
HTTP_PORT=18081 INSTANCE_ID=bench-relay "$bin/voice-relay" >"$out/voice-relay.log" 2>&1 & pids+=($!)
relay_pid=$!
# Redis and PostgreSQL are counted too (shared servers: other work on them shows up in their figures).
server_pids=(--pid "redis=$redis_pid" --pid "redis-calls=$voice_redis_pid" --pid "postgres=~postgres: agentconnect agentconnect_bench")
for port in 18081 18082 18083 18084; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
done

if part messaging; then
echo "== messaging"
"$bin/agentconnect-bench" messaging --ingress http://127.0.0.1:18082 --twilio-port 19190 --seconds "$msg_seconds" \
  --pid "ingress=$ingress_pid" --pid "worker=$worker_pid" --pid "outbound=$outbound_pid" "${server_pids[@]}" \
  --sweep 100 250 500 1000 2000 4000 --sweep-seconds "$sweep_seconds" | tee -a "$rows" | grep -E "ROW|SWEEP" || true
fi
if part voice; then
echo "== voice"
# shellcheck disable=SC2086
"$bin/agentconnect-bench" voice --relay http://127.0.0.1:18081 --calls $voice_calls --table-calls 200 1000 --relay-pid "$relay_pid" \
  --pid "relay=$relay_pid" --pid "worker=$worker_pid" "${server_pids[@]}" --idle-calls 0 | tee -a "$rows" | grep -E "ROW|SWEEP" || true
# The same 1,000 calls with the calls' Redis fsyncing before every answer, as a Redis shared with
# messaging does (README, "Calls on a Redis of their own"): what an fsync per write costs a voice turn.
voice_fsync=$(redis-cli -p "$voice_redis_port" CONFIG GET appendfsync | tail -n1)
if [ "$voice_fsync" != always ]; then
  echo "== voice at 1000 calls, the calls' Redis at appendfsync always"
  redis-cli -p "$voice_redis_port" CONFIG SET appendfsync always >/dev/null
  "$bin/agentconnect-bench" voice --relay http://127.0.0.1:18081 --calls 1000 --table-calls 1000 --relay-pid "$relay_pid" \
    --pid "relay=$relay_pid" --pid "worker=$worker_pid" "${server_pids[@]}" --idle-calls 0 \
    | grep -E "^ROW\|voice (prompt|CPU per turn at)" | sed "s/^ROW|voice /ROW|voice, calls' Redis at appendfsync always: /" | tee -a "$rows" || true
  redis-cli -p "$voice_redis_port" CONFIG SET appendfsync "$voice_fsync" >/dev/null
fi
# Idle calls on a relay started for them: the one that just served the load keeps heap it freed
# resident, and its memory per idle call measured anything from 12 to 32 KiB from run to run.
kill -TERM "$relay_pid" 2>/dev/null || true
for _ in $(seq 1 100); do kill -0 "$relay_pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$relay_pid" 2>/dev/null || true
HTTP_PORT=18081 INSTANCE_ID=bench-relay-idle "$bin/voice-relay" >"$out/voice-relay-idle.log" 2>&1 & pids+=($!)
relay_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:18081/health/ready" >/dev/null && break; sleep 0.1; done
"$bin/agentconnect-bench" voice --relay http://127.0.0.1:18081 --idle-only --idle-calls "$idle_calls" --relay-pid "$relay_pid" \
  | tee -a "$rows" | grep ROW || true
pg_writes=$(psql -h 127.0.0.1 -p "$pg_port" -U agentconnect -d agentconnect_bench -tAc "SELECT count(*) FROM messages")
echo "ROW|PostgreSQL history rows written beside the reply path|$pg_writes|" >>"$rows"
fi
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
wait "${pids[@]}" 2>/dev/null || true
pids=()

if [ "$quick" != 1 ] && part ceilings; then
  echo "== ceilings: Hummingbird route and WebSocket echo"
  "$bin/agentconnect-bench" ceiling | tee -a "$rows" | grep ROW || true
fi
echo "LOAD|end|$(cut -d' ' -f1-3 /proc/loadavg)" >>"$rows"

python3 scripts/bench_table.py "$rows" | tee "$out/latest.md"
python3 scripts/bench_chart.py "$rows" "$out/sweep.svg"
