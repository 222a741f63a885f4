#!/usr/bin/env python3
"""Formats agentconnect-bench rows into the README's table, with goals, reference figures and the
machine's load while each figure was measured."""
import datetime
import platform
import subprocess
import sys

goals = {
    "bus publish→deliver p99": "≤ 2 ms",
    "bus max sustained rate": "≥ ½ redis-benchmark (50 clients)",
    "bus hot path instructions per message": "",
    "messaging webhook→SEND_MESSAGE p50": "≤ 10 ms (TAC Python: 91 ms)",
    "messaging webhook→SEND_MESSAGE p99": "≤ 25 ms (TAC Python: 153 ms)",
    "messaging max sustained rate": "≥ 2,000/s (TAC Python: 10/s)",
    "messaging CPU per message at the max rate, ": "≤ 0.4 ms (TAC Python: about 65)",
    "voice prompt→first token": "p50 ≤ 3 / p99 ≤ 15 ms (TAC Python: 3.0 / 34)",
    "voice prompt→last:true": "p50 ≤ 10 ms (TAC Python: 16 / 55)",
    "voice idle calls": "≥ 10,000 (TAC Python: 5,000)",
    "voice relay memory per idle call": "≤ 32 KiB (TAC Python: ~40 KB)",
}
rows = []
load = {}
for line in open(sys.argv[1]):
    if line.startswith("LOAD|"):
        _, when, figures, *_ = line.rstrip("\n").split("|")
        load[when] = figures
    if line.startswith("ROW|"):
        _, name, figure, *rest = line.rstrip("\n").split("|")
        rows.append((name, figure, rest[0] if rest else ""))
cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print(f"Measured {datetime.date.today()} on {cpu} cores ({platform.machine()}), release build, every process on this machine.")
print("CPU figures are user + system time from /proc/<pid>/stat divided by the messages (or turns) of the run;")
print("\"other processes\" is the share of all cores busy with anything but the processes measured (the load generator included).")
if load:
    print(f"Load average (1/5/15 min) when the run started: {load.get('start', '?')}; when it ended: {load.get('end', '?')}.")
print()
print("| measurement | figure | goal (reference) | machine load while measured |")
print("|---|---|---|---|")
for name, figure, load in rows:
    goal = next((g for key, g in goals.items() if name.startswith(key)), "")
    print(f"| {name} | {figure} | {goal} | {load} |")
