#!/bin/sh
# Like the official image: its redis-server is built with protected mode off (reachable from other
# containers without a password), so pass the same default here.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = "redis-server" ]; then
  shift
  set -- redis-server "$@" --protected-mode no
fi
exec "$@"
