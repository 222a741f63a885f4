#!/usr/bin/env bash
# `make test-deploy`: the image and compose.yaml really run. Builds deploy/Dockerfile unchanged (both
# stages), brings compose.yaml up unchanged (dev profile, the engine's default capabilities), sends
# an SMS and places a call through the edge with twilio-sim and checks the replies, scales
# agent-worker and voice-relay to 2 and does it again, validates the Kubernetes manifests
# (scripts/validate-k8s.sh, when present), prints what it did, and tears everything down.
#
# The engine is podman (no Docker here), run through scripts/containers/: a runc wrapper for
# sandboxes that refuse rlimits, and stand-ins for the base images (no registry is reachable),
# tagged with the names the Dockerfile and compose.yaml use. podman-compose's limits are worked
# around here, not in compose.yaml: each service is started with `up --no-deps` in depends_on order
# and the test waits for each condition itself (health checks need systemd under podman).
#
# Settings: AC_DEPLOY_KEEP=1 leaves the stack running; AC_DEPLOY_IMAGE names the image to build
# (default agentconnect:local, compose.yaml's default).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DEBIAN_FRONTEND=noninteractive
mkdir -p .run
: >.run/test-deploy-failures.log

project=agentconnect-deploy-test
image=${AC_DEPLOY_IMAGE:-localhost/agentconnect:local}
rows=()
started_all=$(date +%s)
current=""
current_started=0

begin() { current=$1; current_started=$(date +%s); echo "==> $1"; }
done_step() { rows+=("$current|${1:-ok}|$(($(date +%s) - current_started))"); current=""; }
table() {
  printf '\n%-52s %-44s %7s\n' "step" "result" "seconds"
  printf '%-52s %-44s %7s\n' "----" "------" "-------"
  local row
  for row in ${rows[@]+"${rows[@]}"}; do
    IFS='|' read -r name result seconds <<<"$row"
    printf '%-52s %-44s %7s\n' "$name" "$result" "$seconds"
  done
  printf '%-52s %-44s %7s\n' "total" "" "$(($(date +%s) - started_all))"
}

# --- Tools ---------------------------------------------------------------------------------------
begin "tools (podman, runc, debootstrap, podman-compose)"
missing=()
for tool in podman runc debootstrap python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq podman runc debootstrap python3 python3-venv curl >/dev/null
fi
compose_bin=$(command -v podman-compose || true)
if [ -z "$compose_bin" ]; then
  venv=.run/deploy-venv
  if [ ! -x "$venv/bin/podman-compose" ]; then
    python3 -m venv "$venv" >/dev/null 2>&1 || {
      apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    }
    "$venv/bin/pip" install -q --disable-pip-version-check podman-compose >/dev/null
  fi
  compose_bin=$root/$venv/bin/podman-compose
fi
# The runc wrapper through a containers.conf of the test's own (podman-compose runs podman too).
# shellcheck source=containers/podman-env.sh
. scripts/containers/podman-env.sh
done_step "$(podman --version | awk '{print "podman " $3}')"

compose() {
  # No .env here is the fresh-clone case; a developer's .env would still be read (compose semantics).
  "$compose_bin" -p "$project" --profile dev "$@"
}
containers_of() {
  podman ps -a --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort
}
# Everything of the test's project, what `compose down -v` removes and the scaled replicas
# podman-compose's `down` leaves behind; all containers stopped at once (podman-compose stops them
# one after the other).
remove_project() {
  local ids
  ids=$(podman ps -aq --filter "label=com.docker.compose.project=$project")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman rm -f -v -t 5 $ids >/dev/null 2>&1
  ids=$(podman volume ls -q --filter "label=com.docker.compose.project=$project")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman volume rm -f $ids >/dev/null 2>&1
  podman network rm -f "${project}_default" >/dev/null 2>&1
  # podman-compose puts the containers in a pod of the project's; one left by an interrupted run
  # (its lock gone with a reboot's /dev/shm) hung the next run's first `podman create` for good.
  timeout 60 podman pod rm -f "pod_$project" >/dev/null 2>&1
  # A `podman create` killed halfway leaves its container in storage only, holding the name.
  ids=$(podman ps -aq --external --filter "name=^${project}_")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman rm -f --storage $ids >/dev/null 2>&1
  return 0
}
# What failed, compactly and last (a CI log keeps only its end): the failed exchanges, what is still
# pending on each stream and who holds the partitions, and the services' latest warnings and errors.
diagnose() {
  local redis_name name
  echo "--- diagnosis ---"
  [ -s .run/test-deploy-failures.log ] && tail -c 1200 .run/test-deploy-failures.log
  redis_name=$(containers_of redis | head -1)
  # Per stream and group: entries taken and not acknowledged (pending) and not read yet (unread);
  # the live workers and who holds each inbound partition.
  [ -z "$redis_name" ] || timeout 30 podman exec -i "$redis_name" sh -s <<'EOF' 2>&1 | cut -c1-300
for s in $(redis-cli --scan --pattern "tac:*" | sort); do
  [ "$(redis-cli type "$s")" = stream ] || continue
  redis-cli xinfo groups "$s" | awk -v s="$s" '
    function out() { if (p > 0 || l > 0) print s "/" g ": pending " p ", unread " l }
    NR % 2 == 1 { k = $0; next }
    k == "name" { if (g != "") out(); g = $0; p = 0; l = 0 }
    k == "pending" { p = $0 }
    k == "lag" { l = $0 }
    END { if (g != "") out() }'
done
echo "workers: $(redis-cli zrange tac:workers:agents 0 -1 | paste -sd " ")"
echo "leases: $(for k in $(redis-cli --scan --pattern "tac:lease:agents:*" | sort -t: -k4 -n); do printf "%s=%s " "${k##*:}" "$(redis-cli get "$k")"; done)"
EOF
  # The services' warnings and errors (not the test's own unsigned probes), the sim's webhook
  # retries, and the edge's errors (a name its resolver could not get, an upstream timing out).
  for name in $(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}'); do
    case $name in *agent-worker* | *outbound* | *messaging-ingress* | *twilio-sim* | *edge*) ;; *) continue ;; esac
    podman logs "$name" 2>&1 | grep -E '"level":"(warning|error|critical)"|webhook not accepted|\[(warn|error|crit)\]' \
      | grep -v 'invalid or missing Twilio signature' | tail -4 | cut -c1-300 | sed "s/^/${name#"${project}"_}: /"
  done
}
teardown() {
  local status=$?
  set +e
  if [ -n "${services_pid:-}" ]; then kill "$services_pid" 2>/dev/null; fi
  if [ -n "$current" ]; then rows+=("$current|FAILED|$(($(date +%s) - current_started))"); fi
  if [ "$status" -ne 0 ] && [ -n "$compose_bin" ]; then
    echo "--- logs (last 40 lines of each container) ---"
    for name in $(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}'); do
      echo "--- $name ($(podman inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' "$name" 2>/dev/null))"
      podman logs --tail 40 "$name" 2>&1
    done
    diagnose
  fi
  if [ "${AC_DEPLOY_KEEP:-0}" != "1" ] && [ -n "$compose_bin" ]; then
    local down_started
    down_started=$(date +%s)
    remove_project
    if [ -n "$(podman ps -aq --filter "label=com.docker.compose.project=$project")" ]; then
      rows+=("teardown|containers left behind|$(($(date +%s) - down_started))")
    else
      rows+=("teardown (containers, volumes, network)|ok|$(($(date +%s) - down_started))")
    fi
  fi
  table
  if [ "$status" -eq 0 ]; then echo "test-deploy: passed"; else echo "test-deploy: FAILED"; fi
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- Stand-in base images (cached by tag) ----------------------------------------------------------
begin "stand-ins: debian, swift (base images)"
before=$(podman images -q | wc -l)
bash scripts/containers/standins.sh debian swift
if [ "$(podman images -q | wc -l)" -gt "$before" ]; then done_step "built"; else done_step "cached"; fi
mkdir -p .run
# redis, postgres and nginx stand-ins are made while the image builds (apt, mostly waiting on I/O).
services_started=$(date +%s)
bash scripts/containers/standins.sh services > .run/test-deploy-standins.log 2>&1 &
services_pid=$!

# --- The image: deploy/Dockerfile as it is ---------------------------------------------------------
begin "image build (deploy/Dockerfile, both stages)"
# The Swift package mirror the stand-in's git url.insteadOf settings point at, mounted read-only.
mounts=()
while IFS= read -r dir; do
  [ -d "$dir" ] && mounts+=(-v "$dir:$dir:ro")
done < <({ git config --system --list 2>/dev/null || true; git config --global --list 2>/dev/null || true; } \
  | sed -n 's/^url\.\(\/.*\)\.insteadof=.*$/\1/Ip' | sort -u)
# --format docker keeps the Dockerfile's HEALTHCHECK (the OCI format has none). The build stage
# stays behind untagged (about 6 GB) as the next run's layer cache; `podman image prune` reclaims
# earlier runs' stages.
nice -n 10 podman build --format docker -f deploy/Dockerfile -t "$image" ${mounts[@]+"${mounts[@]}"} . \
  > .run/test-deploy-build.log 2>&1 || { tail -60 .run/test-deploy-build.log; exit 1; }
executables="voice-relay messaging-ingress outbound agent-worker migrate twilio-sim agentconnect
  agentconnect-bench example-sms-bot example-voice-assistant example-channel-replies
  example-appointment-reminder example-memory-agent example-media-agent example-tool-agent example-call-control"
# shellcheck disable=SC2086
podman run --rm --no-healthcheck "$image" sh -c 'for e in "$@"; do command -v "$e" >/dev/null || { echo "$e missing from the image"; exit 1; }; done; agentconnect --help >/dev/null' sh $executables
done_step "$(podman image inspect -f '{{.Size}}' "$image" | awk -v n="$(echo $executables | wc -w)" '{printf "%d MB, %d executables", $1 / 1e6, n}')"

# --- compose.yaml up, in depends_on order ----------------------------------------------------------
export EDGE_PORT=${AC_DEPLOY_EDGE_PORT:-18080}
export SIM_PORT=${AC_DEPLOY_SIM_PORT:-18090}
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "timed out waiting for $what"; return 1; fi
    sleep 0.5
  done
}
healthy() { # every container of the service passes its compose/image health check
  local name names
  names=$(containers_of "$1")
  [ -n "$names" ] || return 1
  for name in $names; do podman healthcheck run "$name" >/dev/null 2>&1 || return 1; done
}
ready() { # every container of the service answers /health/ready (Redis and PostgreSQL reachable)
  local name names
  names=$(containers_of "$1")
  [ -n "$names" ] || return 1
  for name in $names; do
    [ "$(podman inspect -f '{{.State.Status}}' "$name")" = running ] || return 1
    podman exec "$name" curl -fsS "http://127.0.0.1:8080/health/ready" >/dev/null 2>&1 || return 1
  done
}
# The inbound partitions each agent-worker holds, from its /metrics.
worker_partitions() {
  podman exec "$1" curl -fsS http://127.0.0.1:8080/metrics 2>/dev/null | awk '/^agentconnect_worker_partitions[ {]/ && !/redis="calls"/ { n = $NF } END { print n + 0 }'
}
serving() { # every container of the service holds at least one inbound partition
  local name
  [ -n "$(containers_of "$1")" ] || return 1
  for name in $(containers_of "$1"); do [ "$(worker_partitions "$name")" -gt 0 ] || return 1; done
}
# From inside the network, as twilio-sim's webhooks go (sim -> edge -> messaging-ingress, each name
# looked up again), three times in a row a second apart: the DNS answers flakily before it recovers.
edge_path_answers() {
  local sim_name i
  sim_name=$(containers_of twilio-sim | head -1)
  for i in 1 2 3; do
    [ "$(podman exec "$sim_name" curl -s -o /dev/null -m 3 -w '%{http_code}' -X POST http://edge:8080/webhook)" = 403 ] || return 1
    [ "$i" = 3 ] || sleep 1
  done
}
partitions_split() {
  local name split=""
  for name in $(containers_of agent-worker); do split="${split:+$split/}$(worker_partitions "$name")"; done
  echo "$split"
}
migrated() {
  local name
  name=$(containers_of migrate | head -1)
  [ -n "$name" ] && [ "$(podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$name")" = "exited 0" ]
}
# podman logs every health check it cannot hand to systemd; that noise goes to the compose log.
up() { compose up -d --no-deps --no-build --no-recreate "$@" >>.run/test-deploy-compose.log 2>&1; }

begin "stand-ins: redis, postgres, nginx (during the build)"
wait "$services_pid" || { cat .run/test-deploy-standins.log; exit 1; }
current_started=$services_started
done_step "$(grep -q building .run/test-deploy-standins.log && echo built || echo cached)"

begin "compose up (dev profile, no .env)"
: >.run/test-deploy-compose.log
remove_project
up redis
up redis-calls
up postgres
wait_for 60 "redis healthy" healthy redis
wait_for 60 "redis-calls healthy" healthy redis-calls
wait_for 90 "postgres healthy" healthy postgres
up migrate
wait_for 90 "migrate exited 0" migrated
for service in messaging-ingress voice-relay outbound agent-worker; do up "$service"; done
for service in messaging-ingress voice-relay outbound agent-worker; do
  wait_for 90 "$service ready" ready "$service"
done
up edge
wait_for 30 "edge answering" curl -s -o /dev/null "http://127.0.0.1:$EDGE_PORT/"
up twilio-sim
wait_for 60 "twilio-sim healthy" healthy twilio-sim
done_step "$(podman ps --filter "label=com.docker.compose.project=$project" -q | wc -l) containers running"

# --- Through the edge --------------------------------------------------------------------------------
begin "edge publishes only Twilio's routes"
for path in /metrics /health/ready /; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$EDGE_PORT$path")
  [ "$code" = 404 ] || { echo "edge answered $code for $path"; exit 1; }
done
# An unsigned webhook reaches messaging-ingress through the edge and is refused there.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d 'x=1' "http://127.0.0.1:$EDGE_PORT/webhook")
[ "$code" = 403 ] || { echo "unsigned /webhook through the edge answered $code, not 403"; exit 1; }
done_step "404 /metrics /health, 403 unsigned"

sms_rounds=0
slowest_ms=0
sim() { podman exec "$(containers_of twilio-sim | head -1)" twilio-sim "$@"; }
# sms_round N TAG: N new customers (a number per round and customer: the sim's CLI reads a
# conversation's first reply) text the agent through the sim and the edge; each gets the echo.
# `slowest_ms` keeps the round's slowest reply (the CLI prints each one's time). The wait is long
# enough for the slowest designed path (a turn retried after the visibility timeout, 15 s).
sms_round() {
  local n=$1 tag=$2 i reply pids=() failed=0 out ms
  out=$(mktemp -d)
  sms_rounds=$((sms_rounds + 1))
  slowest_ms=0
  for i in $(seq 1 "$n"); do
    sim sms --timeout 45 --from "+15557$(printf '%02d%04d' "$sms_rounds" "$i")" "deploy $tag sms $i" >"$out/$i" 2>"$out/$i.err" &
    pids+=($!)
  done
  for i in $(seq 1 "$n"); do
    wait "${pids[$((i - 1))]}" || failed=1
    reply=$(head -1 "$out/$i")
    if [ "$reply" != "You said: deploy $tag sms $i" ]; then
      echo "sms $i ($(date -u +%T)): unexpected reply: $(head -1 "$out/$i") $(head -1 "$out/$i.err")" | tee -a .run/test-deploy-failures.log
      failed=1
    fi
    ms=$(sed -n 's/^(\([0-9]*\) ms)$/\1/p' "$out/$i.err" | head -1)
    [ "${ms:-0}" -le "$slowest_ms" ] || slowest_ms=$ms
  done
  rm -rf "$out"
  return "$failed"
}
# call_round N TAG: N callers (through the edge: /twiml, then the ConversationRelay socket) say two
# sentences each and hear them echoed.
call_round() {
  local n=$1 tag=$2 i pids=() failed=0 out
  out=$(mktemp -d)
  for i in $(seq 1 "$n"); do
    sim call --from "+1555800$(printf '%04d' "$i")" --say "deploy $tag call $i" --say "goodbye $i" >"$out/$i" 2>"$out/$i.err" &
    pids+=($!)
  done
  for i in $(seq 1 "$n"); do
    wait "${pids[$((i - 1))]}" || failed=1
    if ! grep -q "^< You said: deploy $tag call $i " "$out/$i" || ! grep -q "^< You said: goodbye $i " "$out/$i"; then
      echo "call $i ($(date -u +%T)): unexpected replies: $(cat "$out/$i" "$out/$i.err")" | tee -a .run/test-deploy-failures.log
      failed=1
    fi
  done
  rm -rf "$out"
  return "$failed"
}

begin "SMS through the edge (1 replica each)"
sms_round 3 one
done_step "3/3 replies, slowest ${slowest_ms} ms"
begin "call through the edge (1 replica each)"
call_round 2 one
done_step "2/2 calls, 4/4 replies"

# --- Scaled ------------------------------------------------------------------------------------------
begin "scale agent-worker=2 voice-relay=2"
up --scale agent-worker=2 agent-worker
up --scale voice-relay=2 voice-relay
wait_for 90 "2 agent-workers" test "$(containers_of agent-worker | wc -l)" -eq 2
wait_for 90 "2 voice-relays" test "$(containers_of voice-relay | wc -l)" -eq 2
wait_for 90 "agent-workers ready" ready agent-worker
wait_for 90 "voice-relays ready" ready voice-relay
# Ready means Redis and PostgreSQL answer; serving means holding inbound partitions (the first
# worker hands half of them over within a few lease refreshes).
wait_for 60 "both agent-workers holding partitions" serving agent-worker
# New containers on the network make podman's DNS (aardvark-dns 1.4, Debian 12) reload; it then
# sometimes leaves names inside the network unanswered for up to a minute (49 s seen), which the sim
# (resolving edge) and the edge (resolving messaging-ingress) both wait on. Wait until requests from
# inside the network get through the edge to messaging-ingress (403: unsigned) again.
settle_started=$(date +%s)
wait_for 120 "the sim reaching messaging-ingress through the edge again" edge_path_answers
done_step "2 + 2 up, partitions $(partitions_split), edge after $(($(date +%s) - settle_started)) s"

begin "SMS through the edge (2 workers)"
sms_round 8 two
done_step "8/8 replies, slowest ${slowest_ms} ms"
begin "calls through the edge (2 relays)"
call_round 6 two
# Which relay ended how many calls (the edge resolves the service name per request; informational).
split=""
for name in $(containers_of voice-relay); do
  calls=$(podman exec "$name" curl -fsS http://127.0.0.1:8080/metrics 2>/dev/null \
    | awk '/^agentconnect_call_duration_seconds_count/ { n += $2 } END { print n + 0 }')
  split="${split:+$split/}$calls"
done
done_step "6/6 calls, 12/12 replies (relays: $split)"

# --- Kubernetes manifests (written and owned by the k8s part of the project) -----------------------
if [ -f scripts/validate-k8s.sh ]; then
  begin "scripts/validate-k8s.sh"
  bash scripts/validate-k8s.sh
  done_step
else
  rows+=("scripts/validate-k8s.sh|not present, skipped|0")
fi
