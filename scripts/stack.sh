#!/usr/bin/env bash
# The local Redis, the calls' Redis (VOICE_REDIS_URL) and PostgreSQL, on loopback, with their data under .run/.
#   stack.sh start   start them (no-op for what already runs); prints nothing on success
#   stack.sh stop    stop them
#   stack.sh status  exit 0 when Redis and PostgreSQL answer (`start` on a running stack adds the calls' Redis)
#   stack.sh env     print REDIS_URL / VOICE_REDIS_URL / DATABASE_URL for the running stack
#   stack.sh mode    print the durability mode the stack was started in (AC_STACK_SYNC below)
#   stack.sh restart-redis [down-seconds]     SHUTDOWN (the append-only file is synced), wait, start
#   stack.sh restart-voice-redis|kill-voice-redis [down-seconds]  the same for the calls' Redis
#   stack.sh restart-postgres [down-seconds]  fast stop, wait, start (the fault suite)
#   stack.sh kill-redis [down-seconds]        kill -9 (a crash: only what the append-only file holds survives), wait, start
#   stack.sh kill-postgres [down-seconds]     kill -9 of the postmaster (crash recovery on start), wait, start
# Durability: AC_STACK_SYNC=durable (default: Redis appendfsync always, the calls' Redis everysec,
# PostgreSQL fsync on, as in production) or fast (`make test`: no fsync; Redis still writes each command to its append-only file
# before it answers, so a killed Redis or PostgreSQL loses nothing, only a machine crash would).
# Under a test run's disk traffic one fsync of Redis's took 0.8 s here and over 5 s on a CI runner,
# past the services' command deadline. Data: AC_RUN_DIR (.run). Ports: AC_REDIS_PORT (16379), AC_VOICE_REDIS_PORT
# (AC_REDIS_PORT + 1), AC_PG_PORT (15432): our own servers on our own ports, never a server
# this project did not start (a Debian host's own PostgreSQL on 5432 or Redis on 6379 is left alone).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run="${AC_RUN_DIR:-$root/.run}"
redis_port=${AC_REDIS_PORT:-16379}
voice_port=${AC_VOICE_REDIS_PORT:-$((redis_port + 1))}
pg_port=${AC_PG_PORT:-15432}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
pg_user=agentconnect
mkdir -p "$run"

# The durability mode: AC_STACK_SYNC when set; for a restart, the mode the stack was started in
# (recorded in $run/sync); else durable.
sync_mode() {
  local mode=${AC_STACK_SYNC:-}
  if [ -z "$mode" ] && [ "$1" = restart ]; then mode=$(cat "$run/sync" 2>/dev/null || true); fi
  # Servers already running keep the mode they were started in (one started later follows it).
  if [ "$1" = running ]; then mode=$(cat "$run/sync" 2>/dev/null || true); fi
  mode=${mode:-durable}
  case "$mode" in
    durable) redis_fsync=always voice_fsync=everysec pg_fsync=on ;;
    fast) redis_fsync=no voice_fsync=no pg_fsync=off ;;
    *) echo "AC_STACK_SYNC must be durable or fast" >&2; exit 2 ;;
  esac
  echo "$mode" >"$run/sync"
}

# A parent may hand us signals blocked (test runners do, and the mask survives exec); the daemons
# started here must still stop on SIGTERM/SIGINT, so they start with an empty mask.
unblock=(python3 -c 'import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])')

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# PostgreSQL refuses to run as root, so as root it runs as `postgres`; its data directory must be
# reachable by that user. A checkout under a private directory is not, so the data goes to /tmp then.
pg_dir() {
  local dir="$run/pg"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$run" 2>/dev/null; then
    dir="/tmp/agentconnect-pg-$(echo "$run" | md5sum | cut -c1-12)"
  fi
  echo "$dir"
}

redis_answers() { redis-cli -p "${1:-$redis_port}" ping >/dev/null 2>&1; }
pg_answers() { "$pg_bin/pg_isready" -h 127.0.0.1 -p "$pg_port" -q 2>/dev/null; }
# Ours: the server on the port is the one whose pid file we wrote.
redis_ours() { [ -f "$run/${2:-redis}/redis.pid" ] && kill -0 "$(cat "$run/${2:-redis}/redis.pid")" 2>/dev/null; }
pg_ours() { local d; d=$(pg_dir); [ -f "$d/data/postmaster.pid" ] && kill -0 "$(head -n1 "$d/data/postmaster.pid")" 2>/dev/null; }
# redis_up [PORT DIR]: the main Redis, or the one on PORT with its data in $run/DIR.
redis_up() { redis_ours "$@" && redis_answers "$@"; }
voice_up() { redis_up "$voice_port" redis-voice; }
pg_up() { pg_ours && pg_answers; }
foreign() {
  echo "port $1 answers but the server there was not started by this project ($2); set $3 to a free port" >&2
  return 1
}

# start_redis [PORT DIR FSYNC VARIABLE]: the main Redis by default.
start_redis() {
  local port=${1:-$redis_port} dir=${2:-redis} fsync=${3:-${redis_fsync:-}} variable=${4:-AC_REDIS_PORT}
  redis_up "$port" "$dir" && return 0
  redis_answers "$port" && { foreign "$port" redis "$variable"; return 1; }
  mkdir -p "$run/$dir"
  "${unblock[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync "$fsync" \
    --dir "$run/$dir" --databases 1024 --daemonize yes --pidfile "$run/$dir/redis.pid" --logfile "$run/$dir/redis.log"
  for _ in $(seq 1 50); do redis_up "$port" "$dir" && return 0; sleep 0.1; done
  echo "redis did not start; see $run/$dir/redis.log" >&2; return 1
}
start_voice() { start_redis "$voice_port" redis-voice "${voice_fsync:-}" AC_VOICE_REDIS_PORT; }

start_pg() {
  pg_up && return 0
  pg_answers && { foreign "$pg_port" postgresql AC_PG_PORT; return 1; }
  local dir; dir=$(pg_dir)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$pg_bin/initdb" -D "$dir/data" -U "$pg_user" --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1
  fi
  as_pg "${unblock[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 30 \
    -o "-p $pg_port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=$pg_fsync" start >/dev/null
  psql -h 127.0.0.1 -p "$pg_port" -U "$pg_user" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='agentconnect'" | grep -q 1 ||
    psql -h 127.0.0.1 -p "$pg_port" -U "$pg_user" -d postgres -qc "CREATE DATABASE agentconnect" >/dev/null
}

stop_all() {
  local dir
  for dir in redis redis-voice; do
    if [ -f "$run/$dir/redis.pid" ]; then kill "$(cat "$run/$dir/redis.pid")" 2>/dev/null || true; rm -f "$run/$dir/redis.pid"; fi
  done
  local dir; dir=$(pg_dir)
  if [ -f "$dir/data/postmaster.pid" ]; then as_pg "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; fi
}

case "${1:-}" in
  start)
    if redis_up && pg_up; then sync_mode running; else sync_mode start; fi
    start_redis; start_voice; start_pg ;;
  stop) stop_all ;;
  status) redis_up && pg_up ;;
  mode) cat "$run/sync" 2>/dev/null || echo durable ;;
  restart-redis)
    sync_mode restart
    redis-cli -p "$redis_port" shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do redis_answers || break; sleep 0.1; done
    sleep "${2:-1}"
    start_redis ;;
  restart-voice-redis)
    sync_mode restart
    redis-cli -p "$voice_port" shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do redis_answers "$voice_port" || break; sleep 0.1; done
    sleep "${2:-1}"
    start_voice ;;
  kill-voice-redis)
    sync_mode restart
    [ -f "$run/redis-voice/redis.pid" ] && kill -9 "$(cat "$run/redis-voice/redis.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do redis_answers "$voice_port" || break; sleep 0.1; done
    rm -f "$run/redis-voice/redis.pid"
    sleep "${2:-1}"
    start_voice ;;
  restart-postgres)
    sync_mode restart
    dir=$(pg_dir)
    as_pg "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    sleep "${2:-1}"
    start_pg ;;
  kill-redis)
    sync_mode restart
    [ -f "$run/redis/redis.pid" ] && kill -9 "$(cat "$run/redis/redis.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do redis_answers || break; sleep 0.1; done
    rm -f "$run/redis/redis.pid"
    sleep "${2:-1}"
    start_redis ;;
  kill-postgres)
    sync_mode restart
    dir=$(pg_dir)
    if [ -f "$dir/data/postmaster.pid" ]; then kill -9 "$(head -n1 "$dir/data/postmaster.pid")" 2>/dev/null || true; fi
    for _ in $(seq 1 100); do pg_answers || break; sleep 0.1; done
    sleep "${2:-1}"
    # The old backends notice the postmaster's death and exit; until they have, a new postmaster
    # refuses the shared memory they hold, so starting is retried (for up to 30 s: on a loaded
    # machine the old backends can take several seconds to go).
    for _ in $(seq 1 30); do start_pg 2>/dev/null && exit 0; sleep 1; done
    start_pg ;;
  env)
    echo "REDIS_URL=redis://127.0.0.1:$redis_port"
    echo "VOICE_REDIS_URL=redis://127.0.0.1:$voice_port"
    echo "DATABASE_URL=postgres://$pg_user:$pg_user@127.0.0.1:$pg_port/agentconnect" ;;
  *) echo "usage: $0 start|stop|status|env|mode|restart-redis|restart-voice-redis|restart-postgres|kill-redis|kill-voice-redis|kill-postgres" >&2; exit 2 ;;
esac
