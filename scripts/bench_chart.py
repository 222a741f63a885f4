#!/usr/bin/env python3
"""Draws the load sweep of `make bench` (the SWEEP lines agentconnect-bench prints) as one SVG:
latency and CPU time per message against offered load, for messaging and for voice. Standard
library only. Usage: bench_chart.py bench-results/rows.txt bench-results/sweep.svg"""
import datetime
import math
import sys
from html import escape


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


sweeps = {"messaging": [], "voice": []}
load = {}
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split("|")
    if parts[0] == "LOAD" and len(parts) >= 3:
        load[parts[1]] = parts[2]
    if parts[0] != "SWEEP" or len(parts) < 11:
        continue
    kind, offered, achieved, p50, p99, missing, cpu_total, busy, others, breakdown = parts[1:11]
    by_process = {}
    for item in filter(None, breakdown.split(",")):
        name, _, value = item.partition("=")
        by_process[name] = number(value)
    sweeps.setdefault(kind, []).append(
        {
            "offered": number(offered), "achieved": number(achieved), "p50": number(p50), "p99": number(p99),
            "missing": int(number(missing) or 0), "cpu": number(cpu_total), "busy": number(busy), "others": number(others),
            "processes": by_process,
        }
    )

WIDTH, HEIGHT = 980, 760
PANEL_W, PANEL_H = 380, 230
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
svg = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
    'font-family="Helvetica, Arial, sans-serif" font-size="12">',
    f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    f'<text x="20" y="28" font-size="17" font-weight="bold">AgentConnect under rising load — {datetime.date.today()}, '
    f'every process on one 2-core machine</text>',
]
note = "Machine load average (1/5/15 min) at start: {} · at end: {}. Grey figures under each point: % of all cores busy (others' share).".format(
    load.get("start", "?"), load.get("end", "?"))
svg.append(f'<text x="20" y="48" fill="#444">{escape(note)}</text>')


def ticks_log(lo, hi):
    result = []
    exponent = math.floor(math.log10(lo))
    while 10**exponent <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10**exponent
            if lo * 0.999 <= v <= hi * 1.001:
                result.append(v)
        exponent += 1
    return result


def label(v):
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def panel(x0, y0, title, xlabel, ylabel, points, series, log_y):
    """points: list of dicts; series: [(name, key function, color, dashed)]."""
    svg.append(f'<text x="{x0}" y="{y0 - 10}" font-size="14" font-weight="bold">{escape(title)}</text>')
    svg.append(f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>')
    xs = [p["offered"] for p in points if p["offered"]]
    values = [f(p) for p in points for _, f, _, _ in series if f(p) is not None and f(p) > 0]
    if not xs or not values:
        svg.append(f'<text x="{x0 + 20}" y="{y0 + PANEL_H / 2}" fill="#888">no data in this run</text>')
        return
    x_lo, x_hi = min(xs) * 0.8, max(xs) * 1.25
    if log_y:
        y_lo, y_hi = 10 ** math.floor(math.log10(min(values))), 10 ** math.ceil(math.log10(max(values)))
    else:
        y_lo, y_hi = 0, max(values) * 1.15

    def px(v):
        return x0 + (math.log10(v) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo)) * PANEL_W

    def py(v):
        if log_y:
            return y0 + PANEL_H - (math.log10(v) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)) * PANEL_H
        return y0 + PANEL_H - (v - y_lo) / (y_hi - y_lo) * PANEL_H

    for v in ticks_log(x_lo, x_hi):
        svg.append(f'<line x1="{px(v):.1f}" y1="{y0}" x2="{px(v):.1f}" y2="{y0 + PANEL_H}" stroke="#eee"/>')
        svg.append(f'<text x="{px(v):.1f}" y="{y0 + PANEL_H + 14}" text-anchor="middle">{label(v)}</text>')
    y_ticks = ticks_log(y_lo, y_hi) if log_y else [y_hi * i / 5 for i in range(6)]
    if log_y and len(y_ticks) > 8:
        y_ticks = [v for v in y_ticks if str(v)[0] == "1"]
    for v in y_ticks:
        svg.append(f'<line x1="{x0}" y1="{py(v):.1f}" x2="{x0 + PANEL_W}" y2="{py(v):.1f}" stroke="#eee"/>')
        svg.append(f'<text x="{x0 - 4}" y="{py(v) + 4:.1f}" text-anchor="end">{label(round(v, 3))}</text>')
    svg.append(f'<text x="{x0 + PANEL_W / 2}" y="{y0 + PANEL_H + 44}" text-anchor="middle">{escape(xlabel)}</text>')
    svg.append(
        f'<text x="{x0 - 46}" y="{y0 + PANEL_H / 2}" text-anchor="middle" transform="rotate(-90 {x0 - 46} {y0 + PANEL_H / 2})">{escape(ylabel)}</text>'
    )
    for p in points:
        if p["offered"] and p["busy"] is not None:
            svg.append(
                f'<text x="{px(p["offered"]):.1f}" y="{y0 + PANEL_H + 27}" text-anchor="middle" font-size="9" fill="#888">'
                f'{p["busy"]:.0f}% ({p["others"]:.0f})</text>'
            )
    legend_y = y0 + 14
    for name, f, color, dashed in series:
        coords = [(px(p["offered"]), py(f(p))) for p in points if p["offered"] and f(p) is not None and f(p) > 0]
        if not coords:
            continue
        dash = ' stroke-dasharray="5,3"' if dashed else ""
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y in coords:
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        svg.append(f'<line x1="{x0 + 10}" y1="{legend_y - 4}" x2="{x0 + 28}" y2="{legend_y - 4}" stroke="{color}" stroke-width="2"{dash}/>')
        svg.append(f'<text x="{x0 + 32}" y="{legend_y}">{escape(name)}</text>')
        legend_y += 14
    for p in points:
        if p["missing"] and p["offered"]:
            svg.append(f'<text x="{px(p["offered"]):.1f}" y="{y0 + 12}" text-anchor="middle" fill="#d62728" font-size="10">{p["missing"]} missing</text>')


def processes(points):
    names = []
    for p in points:
        for name in p["processes"]:
            if name not in names:
                names.append(name)
    return names


messaging = sweeps.get("messaging", [])
voice = sweeps.get("voice", [])
panel(90, 90, "Messaging: webhook → Twilio send latency", "offered load (messages/s)", "ms (log)", messaging,
      [("p50", lambda p: p["p50"], COLORS[0], False), ("p99", lambda p: p["p99"], COLORS[1], True),
       ("replies/s achieved ÷ 10", lambda p: p["achieved"] / 10 if p["achieved"] else None, COLORS[2], True)], True)
panel(90 + PANEL_W + 110, 90, "Messaging: CPU time per message", "offered load (messages/s)", "CPU ms per message", messaging,
      [("services total", lambda p: p["cpu"], "#000", False)]
      + [(name, (lambda n: lambda p: p["processes"].get(n))(name), COLORS[i % len(COLORS)], True) for i, name in enumerate(processes(messaging))], False)
panel(90, 90 + PANEL_H + 110, "Voice: prompt → first token latency", "concurrent calls (one utterance each per second)", "ms (log)", voice,
      [("p50", lambda p: p["p50"], COLORS[0], False), ("p99", lambda p: p["p99"], COLORS[1], True)], True)
panel(90 + PANEL_W + 110, 90 + PANEL_H + 110, "Voice: CPU time per turn (calls set up beforehand)", "concurrent calls", "CPU ms per turn", voice,
      [("services total", lambda p: p["cpu"], "#000", False)]
      + [(name, (lambda n: lambda p: p["processes"].get(n))(name), COLORS[i % len(COLORS)], True) for i, name in enumerate(processes(voice))], False)
svg.append("</svg>")
with open(sys.argv[2], "w") as out:
    out.write("\n".join(svg) + "\n")
print(f"chart: {sys.argv[2]}")
