#!/usr/bin/env python3
"""Parse wrk / h2load output into JSON records, and summarise records into a table.

Used by load/bench-demo.sh and load/bench.sh (stdlib only):

  report.py record --out records.jsonl --target T --tool wrk|h2load --raw OUTPUT ...
      Appends one JSON object: requests, req/s, latency percentiles (µs), errors, CPU seconds of
      the proxy and of the simulator over the run, proxy peak RSS.

  report.py summarize --records records.jsonl --json-out FILE [--title ...] [--machine JSON]
                      [--order T1,T2,...] [--ratios ROUTER:PEER,...]
      Aggregates the runs of each (target, tool), prints a Markdown table (and ratios), and
      writes everything (runs, aggregates, ratios, machine) to FILE.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_wrk(text: str) -> dict:
    """The WRKJSON line printed by load/coopr.lua's done()."""
    for line in text.splitlines():
        if line.startswith("WRKJSON "):
            d = json.loads(line[len("WRKJSON "):])
            secs = d["duration_us"] / 1e6
            errs = d["errors"]
            return {
                "requests": d["requests"],
                "seconds": secs,
                "rps": d["requests"] / secs if secs else 0.0,
                "p50_us": d["p50_us"], "p90_us": d["p90_us"], "p99_us": d["p99_us"],
                "p999_us": d["p999_us"], "max_us": d["max_us"],
                "non_2xx": errs["status"],
                "socket_errors": errs["connect"] + errs["read"] + errs["write"] + errs["timeout"],
            }
    raise SystemExit("wrk output has no WRKJSON line (did it run with -s load/coopr.lua?):\n" + text[-2000:])


def percentile(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def parse_h2load(text: str, log_file: str | None) -> dict:
    """h2load's summary lines, plus latency percentiles from its --log-file."""
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
    if not m:
        raise SystemExit("h2load output has no 'finished in' line:\n" + text[-2000:])
    secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    rps = float(m.group(3))
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    done, succeeded, failed, errored, timeout = (int(r.group(i)) for i in (3, 4, 5, 6, 7))
    non_2xx = sum(int(s.group(i)) for i in (2, 3, 4)) if s else 0
    rec = {"requests": done, "seconds": secs, "rps": rps, "non_2xx": non_2xx,
           "socket_errors": failed + errored + timeout, "h2_succeeded": succeeded}
    if log_file and Path(log_file).exists():
        lat = []
        with open(log_file) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    lat.append(float(parts[2]))
        lat.sort()
        for name, p in (("p50_us", 50), ("p90_us", 90), ("p99_us", 99), ("p999_us", 99.9)):
            rec[name] = percentile(lat, p)
        rec["max_us"] = lat[-1] if lat else float("nan")
        rec["latency_samples"] = len(lat)
    return rec


def cmd_record(a: argparse.Namespace) -> None:
    text = Path(a.raw).read_text(errors="replace")
    rec = parse_wrk(text) if a.tool == "wrk" else parse_h2load(text, a.h2_log)
    rec.update({"target": a.target, "tool": a.tool, "round": a.round, "url": a.url,
                "method": a.method, "wall_s": a.wall})
    n = rec["requests"] or 1
    sim_s = a.sim_ticks / a.clk_tck
    rec["sim_cpu_s"] = sim_s
    rec["load_tool_cpu_s"] = a.tool_ticks / a.clk_tck
    # CPU used by processes that are not part of the benchmark (other sessions' builds...), in
    # cores on average over the run; anything much above 0 means the run was disturbed.
    rec["other_cores"] = max(0.0, a.other_ticks / a.clk_tck / a.wall) if a.wall else 0.0
    rec["sim_cpu_s_per_100k"] = sim_s / n * 1e5
    if a.has_proxy:
        proxy_s = a.proxy_ticks / a.clk_tck
        rec["proxy_cpu_s"] = proxy_s
        rec["proxy_cpu_s_per_100k"] = proxy_s / n * 1e5
        # The kernel's share of it (stime): where the rest of a proxy's CPU goes is user space.
        if a.proxy_sys_ticks >= 0:
            rec["proxy_sys_s"] = a.proxy_sys_ticks / a.clk_tck
            rec["proxy_sys_s_per_100k"] = rec["proxy_sys_s"] / n * 1e5
        rec["proxy_rss_kb"] = a.proxy_rss_kb
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"  {a.target:<22} {a.tool:<6} round {a.round}: {rec['rps']:>9.0f} req/s  "
          f"p50 {fmt_ms(rec.get('p50_us'))}  p99 {fmt_ms(rec.get('p99_us'))}"
          + (f"  proxy CPU {rec['proxy_cpu_s_per_100k']:.2f} s/100k" if a.has_proxy else "")
          + (f" (system {rec['proxy_sys_s_per_100k']:.2f})" if "proxy_sys_s_per_100k" in rec else "")
          + (f"  non-2xx {rec['non_2xx']}" if rec["non_2xx"] else "")
          + (f"  socket errors {rec['socket_errors']}" if rec["socket_errors"] else "")
          + (f"  [other load {rec['other_cores']:.2f} cores]" if rec["other_cores"] >= 0.1 else ""),
          file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Summarising


def fmt_ms(us) -> str:
    if us is None or (isinstance(us, float) and math.isnan(us)):
        return "-"
    return f"{us / 1000:.2f} ms"


def aggregate(runs: list[dict]) -> dict:
    """One (target, tool): throughput and percentiles are the mean over runs; CPU per 100k is
    total CPU over total requests; RSS is the peak over runs."""
    total = sum(r["requests"] for r in runs) or 1
    agg = {
        "target": runs[0]["target"], "tool": runs[0]["tool"], "runs": len(runs),
        "url": runs[0].get("url"), "method": runs[0].get("method"),
        "requests": sum(r["requests"] for r in runs),
        "rps": statistics.fmean(r["rps"] for r in runs),
        "rps_min": min(r["rps"] for r in runs), "rps_max": max(r["rps"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "sim_cpu_s_per_100k": sum(r["sim_cpu_s"] for r in runs) / total * 1e5,
        "other_cores_max": max(r.get("other_cores", 0.0) for r in runs),
    }
    for k in ("p50_us", "p90_us", "p99_us", "p999_us"):
        vals = [r[k] for r in runs if k in r and not math.isnan(r[k])]
        agg[k] = statistics.fmean(vals) if vals else None
    if "proxy_cpu_s" in runs[0]:
        agg["proxy_cpu_s_per_100k"] = sum(r["proxy_cpu_s"] for r in runs) / total * 1e5
        agg["proxy_rss_kb"] = max(r["proxy_rss_kb"] for r in runs)
        if all("proxy_sys_s" in r for r in runs):
            agg["proxy_sys_s_per_100k"] = sum(r["proxy_sys_s"] for r in runs) / total * 1e5
    return agg


def ratios(runs: list[dict], aggs: dict, router: str, peer: str, tool: str) -> dict | None:
    a, b = aggs.get((router, tool)), aggs.get((peer, tool))
    if not a or not b:
        return None
    out = {"router": router, "peer": peer, "tool": tool,
           "throughput_ratio": a["rps"] / b["rps"] if b["rps"] else None}
    if a.get("proxy_cpu_s_per_100k") and b.get("proxy_cpu_s_per_100k"):
        out["cpu_per_request_ratio"] = a["proxy_cpu_s_per_100k"] / b["proxy_cpu_s_per_100k"]
        sa, sb = a.get("proxy_sys_s_per_100k"), b.get("proxy_sys_s_per_100k")
        ua = a["proxy_cpu_s_per_100k"] - sa if sa is not None else None
        ub = b["proxy_cpu_s_per_100k"] - sb if sb is not None else None
        if ua and ub and sa and sb:
            out["user_cpu_per_request_ratio"] = ua / ub
            out["sys_cpu_per_request_ratio"] = sa / sb
    # Per-round ratios (targets alternate within a round), to show how noisy the figure is.
    by_round = {}
    for r in runs:
        if r["tool"] == tool and r["target"] in (router, peer):
            by_round.setdefault(r["round"], {})[r["target"]] = r
    per = [rr[router]["rps"] / rr[peer]["rps"] for rr in by_round.values()
           if router in rr and peer in rr and rr[peer]["rps"]]
    if per:
        out["throughput_ratio_rounds"] = [round(x, 3) for x in per]
    return out


def table(aggs: list[dict], show_rss: bool, show_p999: bool) -> str:
    head = ["target", "tool", "runs", "req/s (min-max)", "p50", "p99"]
    if show_p999:
        head.append("p99.9")
    head += ["proxy CPU s/100k req", "sim CPU s/100k req"]
    if show_rss:
        head.append("proxy peak RSS")
    head += ["non-2xx / errors", "other load (max)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in aggs:
        row = [g["target"], g["tool"], str(g["runs"]),
               f"{g['rps']:,.0f} ({g['rps_min']:,.0f}-{g['rps_max']:,.0f})",
               fmt_ms(g["p50_us"]), fmt_ms(g["p99_us"])]
        if show_p999:
            row.append(fmt_ms(g["p999_us"]))
        row.append((f"{g['proxy_cpu_s_per_100k']:.2f}"
                    + (f" (system {g['proxy_sys_s_per_100k']:.2f})" if "proxy_sys_s_per_100k" in g else ""))
                   if "proxy_cpu_s_per_100k" in g else "-")
        row.append(f"{g['sim_cpu_s_per_100k']:.2f}")
        if show_rss:
            row.append(f"{g['proxy_rss_kb'] / 1024:.1f} MiB" if g.get("proxy_rss_kb") else "-")
        row.append(f"{g['non_2xx']} / {g['socket_errors']}")
        row.append(f"{g['other_cores_max']:.2f} cores")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def cmd_summarize(a: argparse.Namespace) -> None:
    runs = [json.loads(l) for l in Path(a.records).read_text().splitlines() if l.strip()]
    order = a.order.split(",") if a.order else []
    keys = []
    for r in runs:
        k = (r["target"], r["tool"])
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (k[1] != "wrk", order.index(k[0]) if k[0] in order else 99))
    aggs = {k: aggregate([r for r in runs if (r["target"], r["tool"]) == k]) for k in keys}
    rat = []
    for spec in filter(None, (a.ratios or "").split(",")):
        router, peer = spec.split(":")
        for tool in ("wrk", "h2load"):
            x = ratios(runs, aggs, router, peer, tool)
            if x:
                rat.append(x)
    idle = []
    if a.idle and Path(a.idle).exists():
        idle = [json.loads(l) for l in Path(a.idle).read_text().splitlines() if l.strip()]
        for x in idle:
            base = aggs.get((x["target"] + "+noidle", "wrk")) or aggs.get((x["target"], "wrk"))
            loaded = aggs.get((x["target"] + "+idle", "wrk"))
            if base and loaded:
                x["rps_without_idle"] = base["rps"]
                x["rps_with_idle"] = loaded["rps"]
                x["p99_us_with_idle"] = loaded["p99_us"]
                x["throughput_ratio_idle_vs_not"] = loaded["rps"] / base["rps"] if base["rps"] else None
    machine = json.loads(a.machine) if a.machine else {}
    notes = json.loads(a.notes) if a.notes else {}
    result = {"title": a.title, "date": a.date, "machine": machine, "settings": json.loads(a.settings or "{}"),
              "notes": notes, "idle": idle, "aggregates": list(aggs.values()), "ratios": rat, "runs": runs}
    Path(a.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json_out).write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n## {a.title} — {a.date}")
    if machine:
        print(f"machine: nproc {machine.get('nproc')}, kernel {machine.get('kernel')}, "
              f"{machine.get('cpu')}; git {machine.get('git')}")
    if a.settings:
        print("settings: " + ", ".join(f"{k}={v}" for k, v in json.loads(a.settings).items()))
    print()
    print(table(list(aggs.values()), a.rss, a.p999))
    if rat:
        print("\n| ratio | tool | throughput (router / peer) | per-round throughput | proxy CPU per request (router / peer) | of it, user / system (router / peer) |")
        print("|---|---|---|---|---|---|")
        for x in rat:
            cpu = f"{x['cpu_per_request_ratio']:.2f}" if "cpu_per_request_ratio" in x else "-"
            split = (f"{x['user_cpu_per_request_ratio']:.2f} / {x['sys_cpu_per_request_ratio']:.2f}"
                     if "user_cpu_per_request_ratio" in x else "-")
            rounds = ", ".join(f"{v:.2f}" for v in x.get("throughput_ratio_rounds", []))
            print(f"| {x['router']} / {x['peer']} | {x['tool']} | {x['throughput_ratio']:.2f} | {rounds} | {cpu} | {split} |")
    if idle:
        print("\n| idle phase | idle conns opened / answered | still open after load | proxy RSS before | RSS holding them | KiB per idle conn | the same after the wrk run | wrk req/s with idle (without) | p99 with idle |")
        print("|---|---|---|---|---|---|---|---|---|")
        for x in idle:
            kib = f"{x['kib_per_idle_conn']:.1f}" if x.get("kib_per_idle_conn") is not None else "-"
            after = (f"{x['kib_per_idle_conn_after_load']:.1f} ({x['rss_idle_after_load_kb'] / 1024:.1f} MiB)"
                     if x.get("kib_per_idle_conn_after_load") is not None else "-")
            rps = (f"{x['rps_with_idle']:,.0f} ({x['rps_without_idle']:,.0f}, x{x['throughput_ratio_idle_vs_not']:.2f})"
                   if "rps_with_idle" in x else "-")
            print(f"| {x['target']} | {x.get('opened')} / {x.get('answered')} | {x.get('still_open_at_end', '-')} | "
                  f"{x['rss_before_kb'] / 1024:.1f} MiB | {x['rss_idle_kb'] / 1024:.1f} MiB | {kib} | {after} | {rps} | "
                  f"{fmt_ms(x.get('p99_us_with_idle'))} |")
    for k, v in notes.items():
        print(f"\nnote ({k}): {v}")
    noisy = [r for r in runs if r.get("other_cores", 0) >= 0.2]
    if noisy:
        print(f"\nWARNING: {len(noisy)} of {len(runs)} runs shared the machine with other work "
              f"(>= 0.2 cores of other processes; worst {max(r['other_cores'] for r in noisy):.2f}): "
              "their throughput and latency are unreliable; CPU per request less so.")
    else:
        print(f"\nmachine quiet: no run saw >= 0.2 cores of other processes.")
    print(f"\nJSON: {a.json_out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--out", required=True)
    r.add_argument("--target", required=True)
    r.add_argument("--tool", choices=["wrk", "h2load"], required=True)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--raw", required=True)
    r.add_argument("--h2-log")
    r.add_argument("--url")
    r.add_argument("--method", default="GET")
    r.add_argument("--has-proxy", type=int, default=1)
    r.add_argument("--proxy-ticks", type=int, default=0)
    r.add_argument("--proxy-sys-ticks", type=int, default=-1, help="the kernel's share of --proxy-ticks")
    r.add_argument("--sim-ticks", type=int, default=0)
    r.add_argument("--clk-tck", type=int, default=100)
    r.add_argument("--proxy-rss-kb", type=int, default=0)
    r.add_argument("--wall", type=float, default=0.0)
    r.add_argument("--tool-ticks", type=int, default=0)
    r.add_argument("--other-ticks", type=int, default=0)
    s = sub.add_parser("summarize")
    s.add_argument("--records", required=True)
    s.add_argument("--json-out", required=True)
    s.add_argument("--title", default="coopr-router load")
    s.add_argument("--date", default="")
    s.add_argument("--machine")
    s.add_argument("--settings")
    s.add_argument("--notes")
    s.add_argument("--order")
    s.add_argument("--ratios")
    s.add_argument("--idle", help="JSON lines from bench.sh's idle phase")
    s.add_argument("--rss", action="store_true")
    s.add_argument("--p999", action="store_true")
    a = p.parse_args()
    {"record": cmd_record, "summarize": cmd_summarize}[a.cmd](a)


if __name__ == "__main__":
    main()
