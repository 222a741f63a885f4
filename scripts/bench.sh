#!/usr/bin/env bash
# `make bench`: builds release, starts Redis/PostgreSQL (if needed) and the services on their own
# ports, drives them with agentconnect-bench, and prints one table of figures next to this
# machine's ceilings measured in the same run. The table is also written to bench-results/latest.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps.sh
started=0
if ! bash scripts/stack.sh status; then bash scripts/stack.sh start; started=1; fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$started" -eq 1 ] && bash scripts/stack.sh stop
  return 0
}
trap cleanup EXIT
swift build -c release
bin=$(swift build -c release --show-bin-path)
redis_port=${AC_REDIS_PORT:-16379}
pg_port=${AC_PG_PORT:-15432}
out=bench-results
mkdir -p "$out"
rows="$out/rows.txt"
: >"$rows"

echo "== ceilings: redis-benchmark XADD (non-pipelined)"
rb50=$(redis-benchmark -p "$redis_port" -q -n 200000 -c 50 XADD bench:rb '*' f v | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1)
rb1=$(redis-benchmark -p "$redis_port" -q -n 30000 -c 1 XADD bench:rb '*' f v | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1)
redis-cli -p "$redis_port" DEL bench:rb >/dev/null
echo "ROW|ceiling: redis-benchmark XADD, 50 clients (ops/s)|${rb50%.*}|" >>"$rows"
echo "ROW|ceiling: redis-benchmark XADD, 1 client (ops/s)|${rb1%.*}|" >>"$rows"

echo "== bus"
redis-cli -p "$redis_port" -n 9 FLUSHDB >/dev/null
"$bin/agentconnect-bench" bus --redis-url "redis://127.0.0.1:$redis_port/9" | tee -a "$rows" | grep ROW || true

echo "== starting the stack (release)"
redis-cli -p "$redis_port" -n 8 FLUSHDB >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U agentconnect -d postgres -qc "DROP DATABASE IF EXISTS agentconnect_bench" >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U agentconnect -d postgres -qc "CREATE DATABASE agentconnect_bench" >/dev/null
set -a
. deploy/local.env
REDIS_URL="redis://127.0.0.1:$redis_port/8"
DATABASE_URL="postgres://agentconnect@127.0.0.1:$pg_port/agentconnect_bench"
TWILIO_CONVERSATIONS_BASE_URL=http://127.0.0.1:19190
TWILIO_API_BASE_URL=http://127.0.0.1:19190
TWILIO_CONVERSATION_CONFIGURATION_ID=
TWILIO_VOICE_PUBLIC_DOMAIN=127.0.0.1:18081
LOG_LEVEL=warning
set +a
"$bin/migrate" >/dev/null 2>&1
HTTP_PORT=18082 "$bin/messaging-ingress" >"$out/messaging-ingress.log" 2>&1 & pids+=($!)
HTTP_PORT=18083 "$bin/outbound" >"$out/outbound.log" 2>&1 & pids+=($!)
HTTP_PORT=18084 INSTANCE_ID=bench-worker "$bin/agent-worker" >"$out/agent-worker.log" 2>&1 & pids+=($!)
HTTP_PORT=18081 INSTANCE_ID=bench-relay "$bin/voice-relay" >"$out/voice-relay.log" 2>&1 & pids+=($!)
relay_pid=$!
for port in 18081 18082 18083 18084; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
done

echo "== messaging"
"$bin/agentconnect-bench" messaging --ingress http://127.0.0.1:18082 --twilio-port 19190 | tee -a "$rows" | grep ROW || true
echo "== voice"
"$bin/agentconnect-bench" voice --relay http://127.0.0.1:18081 --calls 200 1000 --relay-pid "$relay_pid" --idle-calls "${BENCH_IDLE_CALLS:-10000}" | tee -a "$rows" | grep ROW || true
pg_writes=$(psql -h 127.0.0.1 -p "$pg_port" -U agentconnect -d agentconnect_bench -tAc "SELECT count(*) FROM messages")
echo "ROW|PostgreSQL history rows written beside the reply path|$pg_writes|" >>"$rows"
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
wait "${pids[@]}" 2>/dev/null || true
pids=()

echo "== ceilings: Hummingbird route and WebSocket echo"
"$bin/agentconnect-bench" ceiling | tee -a "$rows" | grep ROW || true

python3 scripts/bench_table.py "$rows" | tee "$out/latest.md"
