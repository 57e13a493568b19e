#!/usr/bin/env python3
"""Markdown tables from the comparison's criterion results.

Reads target/criterion/<workload>/<kind>_<size>/<impl>/new/{benchmark,estimates}.json
(the median of each benchmark) and prints, per workload (recv, send_client,
send_server), messages/s and MB/s (10^6 bytes of payload per second) for every
implementation and the ratio wsengine / best peer, its messages/s over the best peer's
(above 1: wsengine is faster; for recv, also for wsengine-idiom, the docs' `while let
... poll_event()?` loop, and wsengine-copy, a host reading into its own buffer for
`recv(&[u8])`; for send, also for wsengine-owned, the owned-payload API). The
criterion results are of the bench profile (release); the interleaved timing
(src/bin/interleave.rs) prints its own table per build profile.
Usage: report.py [CRITERION_DIR]
       report.py --load DIR   (tables from `wsengine load --json` files named
                               <scenario>__<server>[__r<rep>].json, schema
                               wsengine-load/1: the median of the repetitions; and
                               the permessage-deflate check from check__* files)
"""

import json
import os
import re
import sys

# The runners' names (src/peers.rs, Impl::name), in the order of the columns.
IMPLS = ["wsengine", "wsengine-idiom", "wsengine-copy", "wsengine-owned", "tungstenite", "fastwebsockets", "tokio-websockets"]
# wsengine's runners: each gets a ratio column, its messages/s over the best peer's.
OURS = ["wsengine", "wsengine-idiom", "wsengine-copy", "wsengine-owned"]
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


PEER_ORDER = ["wsengine", "tungstenite", "fastwebsockets", "tokio-websockets", "node-ws", "python-websockets"]
RUN_RE = re.compile(r"^(?P<scenario>.+?)__(?P<server>[^_].*?)(?:__r(?P<rep>\d+))?\.json$")


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def get(r, *path):
    for key in path:
        if not isinstance(r, dict):
            return None
        r = r.get(key)
    return r


def ss_split(path):
    """Bytes per data segment received and sent by the server socket, from `ss -ti`."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    fields = dict(re.findall(r"\b(bytes_sent|bytes_received|data_segs_in|data_segs_out):(\d+)", text))
    try:
        return (
            int(fields["bytes_received"]) / int(fields["data_segs_in"]),
            int(fields["bytes_sent"]) / int(fields["data_segs_out"]),
        )
    except (KeyError, ZeroDivisionError):
        return None


def deflate_check(directory):
    """Bytes on the wire per echoed 16 KiB text message, without and with --deflate
    (run.sh's deflate_check around a 1 s run): loopback bytes per echo (lo rx_bytes),
    and the server socket's bytes per data segment each way (ss -ti)."""
    rows = {}
    for name in sorted(os.listdir(directory)):
        m = re.match(r"^check__(.+)__(plain|deflate)\.io$", name)
        if not m:
            continue
        server, flag = m.groups()
        base = os.path.join(directory, name[: -len(".io")])
        try:
            with open(base + ".io") as f:
                before, after = (int(x) for x in f.read().split())
            with open(base + ".json") as f:
                run = json.load(f)
        except (OSError, ValueError):
            continue
        msgs = run.get("messages") or 0
        if msgs:
            rows.setdefault(server, {})[flag] = (
                (after - before) / msgs,
                msgs,
                get(run, "errors", "total"),
                ss_split(base + ".ss"),
            )
    if not rows:
        return
    print("\n### permessage-deflate check\n")
    print("1 connection x 16 KiB text (16,384 payload bytes each way), 1 in flight, 1 s, fresh server,")
    print("without and with `--deflate`. Loopback B/echo: lo rx_bytes over the run / echoes (both")
    print("directions, TCP/IP headers and ACKs included, any other loopback traffic too). In/out")
    print("B/msg: the server socket's bytes_received / data_segs_in and bytes_sent / data_segs_out")
    print("(`ss -ti`, last sample before the close; one message per segment at 1 in flight).")
    print("Compressed: both ways below 90% of the plain 16,392-byte frame (the loopback ratio")
    print("decides only without an `ss` sample).\n")
    print("| server | loopback B/echo plain | loopback B/echo --deflate | ratio | in B/msg --deflate (client→server) | out B/msg --deflate (server→client) | compressed |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for server in sorted(rows, key=lambda s: PEER_ORDER.index(s) if s in PEER_ORDER else 99):
        r = rows[server]
        p, d = r.get("plain"), r.get("deflate")
        cells = [f"{x[0]:,.0f}" if x else "n/a" for x in (p, d)]
        ratio, verdict = "n/a", "n/a"
        split = d[3] if d else None
        if p and d:
            ratio = f"{d[0] / p[0]:.2f}"
        # The per-socket split decides (each way below 90% of the 16,392-byte plain
        # frame); the loopback total, which other loopback traffic inflates, only without it.
        if d and split:
            verdict = "yes" if max(split) < 0.9 * 16392 and not d[2] else "**NO**"
        elif p and d:
            verdict = "yes" if d[0] / p[0] < 0.9 and not d[2] else "**NO**"
        cells += [ratio] + (["n/a", "n/a"] if not split else [f"{split[0]:,.0f}", f"{split[1]:,.0f}"])
        print(f"| {server} | " + " | ".join(cells) + f" | {verdict} |")


def load_tables(directory):
    """One table per load scenario (the median of its repetitions for every figure), then
    a summary: wsengine against the best peer."""
    runs = {}  # scenario -> server -> [json]
    failed = {}  # (scenario, server) -> count of runs without JSON
    for name in sorted(os.listdir(directory)):
        if name.endswith(".log") and not name.endswith(".server.log") and not name.startswith("check__"):
            if not os.path.exists(os.path.join(directory, name[: -len(".log")] + ".json")):
                m = RUN_RE.match(name[: -len(".log")] + ".json")
                if m:
                    key = (m.group("scenario"), m.group("server"))
                    failed[key] = failed.get(key, 0) + 1
                    runs.setdefault(key[0], {}).setdefault(key[1], [])
            continue
        m = RUN_RE.match(name)
        if not m or name.startswith("check__"):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                runs.setdefault(m.group("scenario"), {}).setdefault(m.group("server"), []).append(json.load(f))
        except (OSError, ValueError) as e:
            print(f"skipping {name}: {e}")
    if not runs:
        print(f"no load results in {directory}")
        return 1

    def num(x, fmt="{:,.0f}"):
        return "n/a" if x is None else fmt.format(x)

    def describe(r):
        st = r.get("settings") or {}
        size = st.get("size")
        kind = "text" if st.get("text") else "binary"
        wss = "over wss:// (TLS), " if str(r.get("url", "")).startswith("wss:") else ""
        if r.get("mode") == "handshakes":
            return (
                f"{st.get('connections')} connection(s) opening and closing in turn, {wss}"
                f"each a full handshake (msgs/s: connection setups/s; server CPU µs/msg: per "
                f"connection; p50/p99: connect to 101), "
                f"warmup {st.get('warmup_s')} s, measured {st.get('duration_s')} s"
            )
        return (
            f"{wss}{st.get('connections')} connection(s) x {label(size) if size else '?'} {kind}, "
            f"{st.get('in_flight')} in flight each, "
            f"{'permessage-deflate offered, ' if st.get('deflate') else ''}"
            f"warmup {st.get('warmup_s')} s, measured {st.get('duration_s')} s"
        )

    try:
        with open(os.path.join(directory, "order")) as f:
            planned = [line.strip() for line in f if line.strip()]
    except OSError:
        planned = []

    def order(scenario):
        if scenario in planned:
            return (0, planned.index(scenario), scenario)
        return (1, 0, scenario)

    summary = []
    deflate_check(directory)
    for scenario in sorted(runs, key=order):
        servers = runs[scenario]
        first = next((rs[0] for rs in servers.values() if rs), None)
        print(f"\n### load: {scenario}\n")
        if first:
            print(describe(first) + ". Medians of the repetitions.\n")
        print(
            "| server | msgs/s | MB/s | p50 µs | p99 µs | server CPU µs/msg | server CPU % "
            "| server RSS MiB | client CPU % | errors | runs |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        med = {}
        for server in sorted(servers, key=lambda s: PEER_ORDER.index(s) if s in PEER_ORDER else 99):
            rs = servers[server]
            m = {
                "msgs": median([r.get("messages_per_s") for r in rs]),
                "mb": median([r.get("mb_per_s") for r in rs]),
                "p50": median([get(r, "latency_us", "p50") for r in rs]),
                "p99": median([get(r, "latency_us", "p99") for r in rs]),
                "cpu": median([get(r, "server", "cpu_us_per_message") for r in rs]),
                "cpu%": median([get(r, "server", "cpu_percent") for r in rs]),
                "rss": median([get(r, "server", "rss_after_bytes") for r in rs]),
                "cli%": median([get(r, "client", "cpu_percent") for r in rs]),
            }
            errors = sum(get(r, "errors", "total") or 0 for r in rs)
            nfail = failed.get((scenario, server), 0)
            med[server] = (m, errors, nfail)
            rss = None if m["rss"] is None else m["rss"] / (1 << 20)
            runs_cell = f"{len(rs)}" + (f" (+{nfail} failed)" if nfail else "")
            print(
                f"| {server} | {num(m['msgs'])} | {num(m['mb'], '{:,.1f}')} "
                f"| {num(m['p50'], '{:,.1f}')} | {num(m['p99'], '{:,.1f}')} "
                f"| {num(m['cpu'], '{:.2f}')} | {num(m['cpu%'], '{:.0f}')} | {num(rss, '{:,.1f}')} "
                f"| {num(m['cli%'], '{:.0f}')} | {errors} | {runs_cell} |"
            )
        ours = med.get("wsengine")
        peers = {s: v for s, v in med.items() if s != "wsengine" and v[1] == 0 and v[2] == 0}
        row = [scenario]
        if ours and ours[1] == 0:
            rate = {s: v[0]["msgs"] for s, v in peers.items() if v[0]["msgs"]}
            cpu = {s: v[0]["cpu"] for s, v in peers.items() if v[0]["cpu"]}
            line = []
            if rate and ours[0]["msgs"]:
                best = max(rate, key=rate.get)
                r = ours[0]["msgs"] / rate[best]
                line.append(f"msgs/s {r:.2f}x ({best})")
                row += [ours[0]["msgs"], best, rate[best], r]
            else:
                row += [None, None, None, None]
            if cpu and ours[0]["cpu"]:
                best = min(cpu, key=cpu.get)
                r = ours[0]["cpu"] / cpu[best]
                line.append(f"server CPU per message {r:.2f}x ({best}; below 1: less CPU)")
                row += [ours[0]["cpu"], best, cpu[best], r]
            else:
                row += [None, None, None, None]
            if line:
                print("\nwsengine / best peer: " + ", ".join(line) + ".")
            summary.append(row)
        if any(v[1] or v[2] for v in med.values()):
            print("\nRuns with errors or without a result do not count in the ratios.")

    if summary:
        print("\n### load: summary, wsengine / best peer (medians)\n")
        print("| point | wsengine msgs/s | best peer (msgs/s) | ratio | wsengine CPU µs/msg | best peer (CPU µs/msg) | ratio |")
        print("|---|---:|---|---:|---:|---|---:|")
        for sc, m, bm, bmv, rm, c, bc, bcv, rc in summary:
            print(
                f"| {sc} | {num(m)} | {bm or 'n/a'} ({num(bmv)}) | {num(rm, '{:.2f}x')} "
                f"| {num(c, '{:.2f}')} | {bc or 'n/a'} ({num(bcv, '{:.2f}')}) | {num(rc, '{:.2f}x')} |"
            )
        print(
            "\nmsgs/s ratio above 1: wsengine is faster; CPU ratio below 1: wsengine spends less"
            " server CPU per message."
        )
    print("\nA load generator near 100% of its core caps msgs/s: compare server CPU µs/msg then.")
    print(
        "At 1 in flight per connection (the `_if1` points) neither core saturates: msgs/s"
        " follows wake-up latency and the shared machine, so compare server CPU µs/msg there too."
    )
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
