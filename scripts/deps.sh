#!/usr/bin/env bash
# Installs what the local stack needs when it is missing: redis-server, libhiredis-dev,
# libgoogle-perftools-dev (tcmalloc), PostgreSQL 15;
# with `test`, also Chromium (the dev phone's browser test).
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
pkg-config --exists hiredis 2>/dev/null || need+=(libhiredis-dev pkg-config)
# The services allocate through tcmalloc (Package.swift, serviceLinkerSettings).
[ "$(uname)" != Linux ] || pkg-config --exists libtcmalloc_minimal 2>/dev/null || need+=(libgoogle-perftools-dev)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
if [ "${1:-}" = "test" ]; then command -v chromium >/dev/null 2>&1 || need+=(chromium); fi

if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
