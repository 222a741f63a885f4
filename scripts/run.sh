#!/usr/bin/env bash
# `make run`: Redis, PostgreSQL, migrations, every service and twilio-sim in the foreground.
# Ctrl-C stops all of it. Settings: deploy/local.env, then .env (yours, optional) on top.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps.sh
swift build
bin=$(swift build --show-bin-path)
bash scripts/stack.sh start
set -a
. deploy/local.env
eval "$(bash scripts/stack.sh env)"
[ -f .env ] && . ./.env
set +a
"$bin/migrate"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  bash scripts/stack.sh stop
}
trap cleanup INT TERM EXIT

for service in twilio-sim messaging-ingress outbound agent-worker voice-relay; do
  # The service itself is the background job (its output is prefixed through a process
  # substitution), so Ctrl-C's SIGTERM reaches it and it drains.
  "$bin/$service" > >(sed -u "s/^/[$service] /") 2>&1 &
  pids+=($!)
done
sleep 2
cat <<MSG

AgentConnect is running with the echo agent and twilio-sim.
  Dev phone (chat and call your agent, see every hop): open http://127.0.0.1:8090
  Or from a shell:
  $bin/twilio-sim call --say "hello" --say "what time is it"
  $bin/twilio-sim sms --from +15551234567 "hello"
Ctrl-C stops everything.
MSG
wait
