#!/bin/sh
# The official nginx image's entrypoint: run /docker-entrypoint.d/ in order before nginx.
set -e
if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
  for f in $(find /docker-entrypoint.d/ -follow -type f -print | sort -V); do
    case "$f" in
      *.envsh) if [ -x "$f" ]; then echo "$0: sourcing $f"; . "$f"; fi ;;
      *.sh) if [ -x "$f" ]; then echo "$0: running $f"; "$f"; fi ;;
      *) echo "$0: ignoring $f" ;;
    esac
  done
  echo "$0: ready for start up"
fi
exec "$@"
