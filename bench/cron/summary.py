#!/usr/bin/env python3
"""bench/cron/summary.py: the figures of bench/cron/run.sh.

  summary.py line LABEL SERVER_LOG FROM TO [WRK_OUT] [LOADAVG]
      one RESULT line: the jitter (fired_at - tick) of the ticks logged by
      bench/cron/app.lua ("cron tick=T fired_at=F") from tick FROM to TO
      (epoch seconds; a tick of the window without a line is "missing"),
      p50 / p99 / max in ms; the req/s and latency of wrk's output.
  summary.py table RESULTS
      the RESULT lines as a table, with the median of each column over rounds.
"""
import math
import re
import statistics
import sys


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a sorted list."""
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))
    return values[k]


def line(label, log, first, last, wrk_out="", load=""):
    first, last = int(first), int(last)
    jitter, ticks = [], []
    for m in re.finditer(r"cron tick=(\d+) fired_at=([\d.]+)", open(log).read()):
        tick, fired = int(m.group(1)), float(m.group(2))
        if first <= tick <= last:
            ticks.append(tick)
            jitter.append((fired - tick) * 1000)
    missing = last - first + 1 - len(set(ticks))
    jitter.sort()
    out = (f"RESULT cron {label} ticks={len(jitter)} missing={missing} p50_ms={pct(jitter, 50):.2f} "
           f"p99_ms={pct(jitter, 99):.2f} max_ms={max(jitter) if jitter else float('nan'):.2f}")
    if wrk_out:
        text = open(wrk_out).read()
        rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
        p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
        p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
        errs = re.search(r"Socket errors: (.*)", text)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        out += (f" rps={rps.group(1) if rps else 0} http_p50={p50.group(1) if p50 else '?'}"
                f" http_p99={p99.group(1) if p99 else '?'}")
        if errs or non2xx:
            out += f" errors={(errs.group(1).replace(' ', '') if errs else '')}{non2xx.group(1) if non2xx else ''}"
    if load:
        out += f" loadavg={load.replace(' ', '/')}"
    print(out)


def table(results):
    rows = []
    for l in open(results):
        m = re.search(r"round=(\d+) (idle|load) ticks=(\d+) missing=(\d+) p50_ms=(\S+) p99_ms=(\S+) max_ms=(\S+)"
                      r"(?: rps=(\S+))?.*?(?:loadavg=(\S+))?$", l.strip())
        if m:
            rows.append(m.groups())
    print("\n| round | phase | ticks | jitter p50 ms | p99 ms | max ms | req/s | loadavg (1/5/15 min) at start |")
    print("|---|---|---|---|---|---|---|---|")
    for r, phase, n, miss, p50, p99, mx, rps, load in rows:
        extra = f" ({miss} missing)" if miss != "0" else ""
        print(f"| {r} | {phase} | {n}{extra} | {p50} | {p99} | {mx} | {rps or '-'} | {load or '?'} |")
    for phase in ("idle", "load"):
        sel = [x for x in rows if x[1] == phase]
        if not sel:
            continue
        med = lambda i: statistics.median(float(x[i]) for x in sel)
        spread = lambda i: f"{min(float(x[i]) for x in sel):.2f}-{max(float(x[i]) for x in sel):.2f}"
        rps = (f"{med(7):.0f} ({min(float(x[7]) for x in sel):.0f}-{max(float(x[7]) for x in sel):.0f})"
               if phase == "load" else "-")
        print(f"| median (range) | {phase} | | {med(4):.2f} ({spread(4)}) | {med(5):.2f} ({spread(5)}) | "
              f"{med(6):.2f} ({spread(6)}) | {rps} | |")


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "line":
        line(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
