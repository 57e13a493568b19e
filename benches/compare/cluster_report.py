#!/usr/bin/env python3
"""Tables for benches/compare/cluster.sh from its `wsengine load --hub --json` files.

Usage: cluster_report.py DIR     markdown on stdout

Files: DIR/sat__SERVER__cC__sSIZE__rN.json (saturation), DIR/lat__... (a fixed rate).
Medians over the repetitions; a run with
errors (lost, duplicate, refused, closed) still counts, and is flagged.
"""
import glob
import json
import os
import re
import statistics
import sys

ORDER = ["hub", "socketio"]
NAME = re.compile(r"^(sat|lat)__(.+)__c(\d+)__s(\d+)__r(\d+)\.json$")
TARGET = 20.0


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summary(js):
    def get(*path):
        out = []
        for j in js:
            v = j
            for k in path:
                v = (v or {}).get(k) if isinstance(v, dict) else None
            out.append(v)
        return med(out)

    calls = {}
    for j in js:
        broker = j.get("broker") or {}
        # The broker's figures cover publishing and the drain: per publication accepted.
        pubs = j["totals"]["published"]
        for name, n in (broker.get("calls") or {}).items():
            if pubs:
                calls.setdefault(name, []).append(n / pubs)
    return {
        "n": len(js),
        "dps": get("deliveries_per_s"),
        "pps": get("deliveries_per_s") / js[0]["settings"]["subscribers"] if js else None,
        "p50": get("latency_us", "p50"),
        "p99": get("latency_us", "p99"),
        "server_cpu": get("server", "cpu_percent"),
        "server_us": get("server", "cpu_us_per_delivery"),
        "client_cpu": get("client", "cpu_percent"),
        "broker_cpu": get("broker", "cpu_percent"),
        "broker_us": get("broker", "cpu_us_per_publication"),
        "broker_cmds": get("broker", "commands_per_publication"),
        "calls": {k: statistics.median(v) for k, v in calls.items()},
        "faults": sum(j["totals"]["lost"] + j["totals"]["duplicates"] + j["totals"]["out_of_order"] for j in js),
        "errors": sum(j["errors"]["total"] for j in js),
    }


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def main():
    d = sys.argv[1]
    runs = {}
    for path in glob.glob(os.path.join(d, "*.json")):
        m = NAME.match(os.path.basename(path))
        if not m:
            continue
        kind, server, c, size, _ = m.groups()
        try:
            with open(path) as f:
                runs.setdefault((kind, int(c), int(size)), {}).setdefault(server, []).append(json.load(f))
        except (OSError, ValueError):
            continue
    if not runs:
        print("no results")
        return
    for (kind, c, size) in sorted(runs, key=lambda k: (k[0] != "sat", k[1], k[2])):
        by = runs[(kind, c, size)]
        nodes = None
        rate = by[next(iter(by))][0]["settings"]["rate_per_publisher"]
        what = ("saturation (no rate cap, in flight until delivered)" if kind == "sat"
                else f"{rate} publishes/s per publisher")
        print(f"\n### {c:,} subscribers over the nodes, {size} B payloads, one publisher per node: {what}\n")
        print("| server | deliveries/s | publications/s | p50 µs | p99 µs | nodes CPU % | nodes µs/delivery "
              "| generator CPU % | Redis CPU % | Redis µs/publication | Redis commands/publication "
              "| client requests/publication | faults | errors | runs |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        sums = {}
        for server in sorted(by, key=lambda s: ORDER.index(s) if s in ORDER else 99):
            s = summary(by[server])
            sums[server] = s
            nodes = nodes or len(by[server][0].get("urls") or [1])
            # What a client sends Redis per publication: EVAL (the hub's script) or a
            # direct PUBLISH (Socket.IO's adapter); inside a script PUBLISH counts too.
            calls = s["calls"]
            if "eval" in calls:
                requests = f"{calls['eval']:.2f} EVAL"
            elif "evalsha" in calls:
                requests = f"{calls['evalsha']:.2f} EVALSHA"
            elif "publish" in calls:
                requests = f"{calls['publish']:.2f} PUBLISH"
            else:
                requests = "-"
            print(f"| {server} | {fmt(s['dps'])} | {fmt(s['pps'])} | {fmt(s['p50'])} | {fmt(s['p99'])} "
                  f"| {fmt(s['server_cpu'], 1)} | {fmt(s['server_us'], 2)} | {fmt(s['client_cpu'], 1)} "
                  f"| {fmt(s['broker_cpu'], 1)} | {fmt(s['broker_us'], 2)} | {fmt(s['broker_cmds'], 2)} "
                  f"| {requests} | {s['faults']} | {s['errors']} | {s['n']} |")
        print(f"\n({nodes} nodes; medians over the runs; publications/s: deliveries/s / subscribers; "
              "Redis figures per publication accepted, from the first publish to the end of the drain "
              "(Redis's own idle work included: at a low rate it dominates); "
              "faults: lost + duplicate + out of order, all runs)")
        hub, sio = sums.get("hub"), sums.get("socketio")
        if kind != "sat" and hub and sio and hub["p99"] and sio["p99"]:
            print(f"\nat equal load: p99 {fmt(hub['p99'])} µs (hub) vs {fmt(sio['p99'])} µs (socketio), "
                  f"{sio['p99'] / hub['p99']:.1f}x lower for the hub")
        for server, s in sums.items():
            top = sorted(s["calls"].items(), key=lambda kv: -kv[1])[:8]
            if top:
                print(f"\n{server}: Redis calls per publication (a script's commands count too): "
                      + ", ".join(f"{k} {v:.2f}" for k, v in top))
        if kind == "sat" and hub and sio and hub["dps"] and sio["dps"]:
            ratio = hub["dps"] / sio["dps"]
            equal = hub["p99"] is not None and sio["p99"] is not None and hub["p99"] <= sio["p99"]
            print(f"\nhub / socketio: deliveries/s {ratio:.2f}x (target ≥ {TARGET:.0f}x at equal p99), "
                  f"p99 {fmt(hub['p99'])} µs vs {fmt(sio['p99'])} µs "
                  f"({'the hub at or under Socket.IO' if equal else 'the hub over Socket.IO: not at equal p99'}); "
                  f"Redis µs per publication {fmt(hub['broker_us'], 2)} vs {fmt(sio['broker_us'], 2)}")


if __name__ == "__main__":
    main()
