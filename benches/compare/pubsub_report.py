#!/usr/bin/env python3
"""Tables for benches/compare/pubsub.sh from its `wsengine load --hub --json` files.

Usage: pubsub_report.py DIR                            markdown tables on stdout
       pubsub_report.py --rate DIR SERVER C SIZE DIVISOR  the median publishes/s of a
                                                       saturation point / DIVISOR (integer)

Files: DIR/sat__SERVER__cC__sSIZE__rN.json (saturation), DIR/latD__... (fixed rate at
1/D of the hub's saturation),
DIR/idle__SERVER.json (memory per idle subscriber). Medians over the repetitions; a run
with errors (lost, duplicate, refused, closed) still counts, and is flagged.
"""
import glob
import json
import os
import re
import statistics
import sys

ORDER = ["hub-1core", "hub-2cores", "broadcast", "node-ws", "socketio"]
NAME = re.compile(r"^(sat|lat\d+)__(.+)__c(\d+)__s(\d+)__r(\d+)\.json$")


def load(d):
    runs = {}
    for path in glob.glob(os.path.join(d, "*.json")):
        m = NAME.match(os.path.basename(path))
        if not m:
            continue
        kind, server, c, size, _ = m.groups()
        try:
            with open(path) as f:
                j = json.load(f)
        except (OSError, ValueError):
            continue
        runs.setdefault((kind, server, int(c), int(size)), []).append(j)
    return runs


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summary(js):
    def lat(q):
        return med([(j.get("latency_us") or {}).get(q) for j in js])

    def srv(k):
        return med([(j.get("server") or {}).get(k) for j in js])

    us = srv("cpu_us_per_delivery")
    errors = sum(j["errors"]["total"] for j in js)
    lost = sum(j["totals"]["lost"] for j in js)
    return {
        "n": len(js),
        "dps": med([j["deliveries_per_s"] for j in js]),
        "pps": med([j["publishes_per_s"] for j in js]),
        "p50": lat("p50"),
        "p99": lat("p99"),
        "p999": lat("p99_9"),
        "srv_cpu": srv("cpu_percent"),
        "us": us,
        "per_cpu_s": (1e6 / us) if us else None,
        "cli_cpu": med([(j.get("client") or {}).get("cpu_percent") for j in js]),
        "errors": errors,
        "lost": lost,
    }


def f(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def main():
    if sys.argv[1] == "--rate":
        d, server, c, size, div = sys.argv[2:7]
        js = load(d).get(("sat", server, int(c), int(size)), [])
        s = summary(js) if js else None
        print(int(s["pps"] / float(div)) if s and s["pps"] else 0)
        return
    d = sys.argv[1]
    runs = load(d)
    points = sorted({(k[2], k[3]) for k in runs if k[0] == "sat"})
    targets = []
    for c, size in points:
        print(f"\n### {c:,} subscribers, {size} B payloads: saturation (1 publisher, no rate cap)\n")
        print("| server | deliveries/s | publishes/s | p50 µs | p99 µs | p99.9 µs | server CPU % "
              "| server µs/delivery | deliveries per server CPU-s | generator CPU % | errors (lost) | runs |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        got = {}
        for server in ORDER:
            js = runs.get(("sat", server, c, size))
            if not js:
                continue
            s = summary(js)
            got[server] = s
            print(f"| {server} | {f(s['dps'])} | {f(s['pps'])} | {f(s['p50'])} | {f(s['p99'])} "
                  f"| {f(s['p999'])} | {f(s['srv_cpu'])} | {f(s['us'], 2)} | {f(s['per_cpu_s'])} "
                  f"| {f(s['cli_cpu'])} | {s['errors']} ({s['lost']}) | {s['n']} |")
        hub = got.get("hub-1core")
        if hub:
            for peer, goal in (("socketio", 20.0), ("broadcast", 0.5)):
                p = got.get(peer)
                if not p:
                    continue
                wall = hub["dps"] / p["dps"] if p["dps"] else None
                cpu = hub["per_cpu_s"] / p["per_cpu_s"] if p["per_cpu_s"] and hub["per_cpu_s"] else None
                print(f"\nhub-1core / {peer}: deliveries/s {ratio(hub['dps'], p['dps'])}, "
                      f"deliveries per server CPU-second {ratio(hub['per_cpu_s'], p['per_cpu_s'])} "
                      f"(target ≥ {goal}x)")
                targets.append((c, size, peer, goal, wall, cpu))
    for kind in sorted({k[0] for k in runs if k[0].startswith("lat")}, key=lambda k: int(k[3:])):
        div = int(kind[3:])
        lat_points = sorted({(k[2], k[3]) for k in runs if k[0] == kind})
        frac = "half" if div == 2 else f"1/{div}"
        print(f"\n### Latency at {frac} of the hub's saturation (fixed rate, 1 publisher)\n")
        print("| subscribers | size | publishes/s | hub p50 µs | hub p99 µs | hub CPU % "
              "| broadcast p50 µs | broadcast p99 µs | broadcast CPU % "
              "| hub p99 / broadcast p99 (target ≤ 2x) | errors (hub/broadcast) |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c, size in lat_points:
            h = runs.get((kind, "hub-1core", c, size))
            b = runs.get((kind, "broadcast", c, size))
            h = summary(h) if h else None
            b = summary(b) if b else None
            pps = (h or b or {}).get("pps")
            print(f"| {c:,} | {size} | {f(pps)} | {f(h and h['p50'])} | {f(h and h['p99'])} "
                  f"| {f(h and h['srv_cpu'])} | {f(b and b['p50'])} | {f(b and b['p99'])} "
                  f"| {f(b and b['srv_cpu'])} | {ratio(h and h['p99'], b and b['p99'])} "
                  f"| {(h or {}).get('errors', '-')}/{(b or {}).get('errors', '-')} |")
    idle = sorted(glob.glob(os.path.join(d, "idle__*.json")))
    if idle:
        print("\n### Memory per idle subscriber (one channel, no publisher)\n")
        print("| server | subscribers | RSS before | RSS after | per subscriber (target ≤ 4 KiB for the hub) | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for path in idle:
            server = os.path.basename(path)[len("idle__"):-len(".json")]
            with open(path) as fh:
                j = json.load(fh)
            s = j.get("server") or {}
            n = j["settings"]["subscribers"]
            before, after = s.get("rss_before_bytes"), s.get("rss_after_bytes")
            per = (after - before) / n if before is not None and after is not None else None
            print(f"| {server} | {n:,} | {f(before and before / 2**20, 1)} MiB "
                  f"| {f(after and after / 2**20, 1)} MiB | {f(per and per / 1024, 2)} KiB "
                  f"| {j['errors']['total']} |")


if __name__ == "__main__":
    main()
