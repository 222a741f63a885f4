#!/usr/bin/env bash
# Formats every Swift source in place with swift-format and the repository's .swift-format
# (150 columns, 4 spaces, formatting rules only: whatever `scripts/lint.sh`'s format check flags,
# this fixes). Usage: bash scripts/format.sh [paths…] (default: the whole tree).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "$#" -eq 0 ]; then
  set -- Package.swift Shared Services DevTools Examples Tests
fi
swift format format --configuration .swift-format --in-place --recursive --parallel "$@"
