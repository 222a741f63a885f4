#!/usr/bin/env python3
"""Formats agentconnect-bench rows into the README's table, with goals and reference figures."""
import datetime
import platform
import subprocess
import sys

goals = {
    "bus publish→deliver p99": "≤ 2 ms",
    "bus max sustained rate": "≥ ½ redis-benchmark (50 clients)",
    "messaging webhook→SEND_MESSAGE p50": "≤ 10 ms (TAC Python: 91 ms)",
    "messaging webhook→SEND_MESSAGE p99": "≤ 25 ms (TAC Python: 153 ms)",
    "messaging max sustained rate": "≥ 2,000/s (TAC Python: 10/s)",
    "voice prompt→first token": "p50 ≤ 3 / p99 ≤ 15 ms (TAC Python: 3.0 / 34)",
    "voice prompt→last:true": "p50 ≤ 10 ms (TAC Python: 16 / 55)",
    "voice idle calls": "≥ 10,000 (TAC Python: 5,000)",
    "voice relay memory per idle call": "≤ 32 KiB (TAC Python: ~40 KB)",
}
rows = []
for line in open(sys.argv[1]):
    if line.startswith("ROW|"):
        _, name, figure, *_ = line.rstrip("\n").split("|")
        rows.append((name, figure))
cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print(f"Measured {datetime.date.today()} on {cpu} cores ({platform.machine()}), release build, every process on this machine.\n")
print("| measurement | figure | goal (reference) |")
print("|---|---|---|")
for name, figure in rows:
    goal = next((g for key, g in goals.items() if name.startswith(key)), "")
    print(f"| {name} | {figure} | {goal} |")
