#!/usr/bin/env python3
"""Markdown tables from the comparison's criterion results.

Reads target/criterion/<workload>/<kind>_<size>/<impl>/new/{benchmark,estimates}.json
(the median of each benchmark) and prints, per workload (recv, send_client,
send_server), messages/s and MB/s (10^6 bytes of payload per second) for every
implementation and the ratio wsengine / best peer (above 1: wsengine is faster; for
send, also for wsengine-owned, the owned-payload API).
Usage: report.py [CRITERION_DIR]
       report.py --load DIR   (tables from `wsengine load --json` files named
                               <scenario>__<server>.json, schema wsengine-load/1)
"""

import json
import os
import re
import sys

IMPLS = ["wsengine", "wsengine-owned", "tungstenite", "fastwebsockets", "tokio-websockets"]
OURS = ["wsengine", "wsengine-owned"]
WORKLOADS = ["recv", "send_client", "send_server"]
SIZE_RE = re.compile(r"^(text|binary)_(\d+)(B|KiB|MiB)$")
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20}


def load(root):
    """{workload: {(kind, size): {impl: (ns_median, payload_bytes)}}}"""
    results = {}
    for workload in WORKLOADS:
        wdir = os.path.join(root, workload)
        if not os.path.isdir(wdir):
            continue
        for case in os.listdir(wdir):
            m = SIZE_RE.match(case)
            if not m:
                continue
            kind, size = m.group(1), int(m.group(2)) * UNITS[m.group(3)]
            for impl in IMPLS:
                new = os.path.join(wdir, case, impl, "new")
                try:
                    with open(os.path.join(new, "estimates.json")) as f:
                        ns = json.load(f)["median"]["point_estimate"]
                    with open(os.path.join(new, "benchmark.json")) as f:
                        throughput = json.load(f).get("throughput") or {}
                except (OSError, KeyError, ValueError):
                    continue
                payload = throughput.get("Bytes") or throughput.get("BytesDecimal")
                if not payload:
                    continue
                results.setdefault(workload, {}).setdefault((kind, size), {})[impl] = (
                    ns,
                    payload,
                )
    return results


def si(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def label(size):
    for unit in ("MiB", "KiB"):
        if size >= UNITS[unit] and size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]} {unit}"
    return f"{size} B"


def load_tables(directory):
    """One table per load scenario: the servers side by side."""
    runs = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json") or "__" not in name:
            continue
        scenario, server = name[: -len(".json")].split("__", 1)
        try:
            with open(os.path.join(directory, name)) as f:
                runs.setdefault(scenario, {})[server] = json.load(f)
        except (OSError, ValueError) as e:
            print(f"skipping {name}: {e}")
    if not runs:
        print(f"no load results in {directory}")
        return 1

    def num(x, fmt="{:,.0f}"):
        return "n/a" if x is None else fmt.format(x)

    for scenario, servers in runs.items():
        print(f"\n### load: {scenario}\n")
        print("| server | msgs/s | MB/s | p50 µs | p99 µs | server CPU µs/msg | server CPU % | client CPU % | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for server, r in servers.items():
            lat = r.get("latency_us") or {}
            srv = r.get("server") or {}
            cli = r.get("client") or {}
            errors = (r.get("errors") or {}).get("total")
            print(
                f"| {server} | {num(r.get('messages_per_s'))} | {num(r.get('mb_per_s'), '{:,.1f}')} "
                f"| {num(lat.get('p50'), '{:,.1f}')} | {num(lat.get('p99'), '{:,.1f}')} "
                f"| {num(srv.get('cpu_us_per_message'), '{:.2f}')} | {num(srv.get('cpu_percent'), '{:.0f}')} "
                f"| {num(cli.get('cpu_percent'), '{:.0f}')} | {num(errors, '{}')} |"
            )
    print("\nA load generator near 100% of its core caps msgs/s: compare server CPU µs/msg then.")
    return 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--load":
        return load_tables(sys.argv[2])
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "target", "criterion"
    )
    results = load(root)
    if not results:
        print(f"no criterion results under {root}")
        return 1
    for workload in WORKLOADS:
        cases = results.get(workload)
        if not cases:
            continue
        print(f"\n### {workload}\n")
        print("Cells: messages/s · MB/s (payload, 10^6 bytes), from the median time per iteration.\n")
        impls = [i for i in IMPLS if any(i in row for row in cases.values())]
        ours = [i for i in OURS if i in impls]
        head = ["message"] + impls + [f"{o} / best peer" for o in ours]
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for kind, size in sorted(cases, key=lambda k: (k[0] != "text", k[1])):
            row = cases[(kind, size)]
            cells, rates = [], {}
            for impl in impls:
                if impl not in row:
                    cells.append("n/a")
                    continue
                ns, payload = row[impl]
                secs = ns * 1e-9
                msgs = payload / size / secs
                rates[impl] = msgs
                cells.append(f"{si(msgs)}/s · {payload / secs / 1e6:,.0f}")
            peers = {k: v for k, v in rates.items() if k not in OURS}
            for o in ours:
                if o in rates and peers:
                    best = max(peers, key=peers.get)
                    ratio = rates[o] / peers[best]
                    mark = "" if ratio >= 1 else " ⚠"
                    cells.append(f"{ratio:.2f}× ({best}){mark}")
                else:
                    cells.append("n/a")
            print(f"| {kind} {label(size)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
