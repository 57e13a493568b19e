#!/usr/bin/env python3
"""Summarise an Autobahn|Testsuite report (index.json) and judge it.

Prints a per-section table (Markdown) to stdout, optionally writes it to a file, and exits
  0  every case that should have run did run, and each has an acceptable verdict,
  1  a case is FAILED / NON-STRICT / UNIMPLEMENTED (or any other non-OK verdict), a case's
     close behaviour is not OK, a case or a whole section did not run, or too few cases ran,
  2  the report or config cannot be read.

Acceptable: behavior OK or INFORMATIONAL, and behaviorClose OK or INFORMATIONAL. Cases
excluded by the wstest config ("exclude-cases", and "exclude-agent-cases" for the agent) are
shown but not judged.

Usage: summarize.py INDEX_JSON --config SPEC_JSON [--agent wsengine] [--markdown OUT]
                    [--min-cases 250] [--title TEXT] [--label WORD]
"""

import argparse
import json
import os
import re
import sys
from collections import Counter

# The case ids of autobahntestsuite 25.10.1, as "group": n for ids group.1 .. group.n (from
# its CaseSet with cases ["*"]: 517 cases). Regenerate if install.sh pins another version.
SUITE_VERSION = "25.10.1"
SUITE_GROUPS = {
    "1.1": 8, "1.2": 8, "2": 11, "3": 7, "4.1": 5, "4.2": 5, "5": 20,
    "6.1": 3, "6.2": 4, "6.3": 2, "6.4": 4, "6.5": 5, "6.6": 11, "6.7": 4, "6.8": 2,
    "6.9": 4, "6.10": 3, "6.11": 5, "6.12": 8, "6.13": 5, "6.14": 10, "6.15": 1,
    "6.16": 3, "6.17": 5, "6.18": 5, "6.19": 5, "6.20": 7, "6.21": 8, "6.22": 34,
    "6.23": 7, "7.1": 6, "7.3": 6, "7.5": 1, "7.7": 13, "7.9": 9, "7.13": 2,
    "9.1": 6, "9.2": 6, "9.3": 9, "9.4": 9, "9.5": 6, "9.6": 6, "9.7": 6, "9.8": 6,
    "10.1": 1,
    "12.1": 18, "12.2": 18, "12.3": 18, "12.4": 18, "12.5": 18,
    "13.1": 18, "13.2": 18, "13.3": 18, "13.4": 18, "13.5": 18, "13.6": 18, "13.7": 18,
}
SUITE_CASES = [f"{g}.{i}" for g, n in SUITE_GROUPS.items() for i in range(1, n + 1)]

SECTION_NAMES = {
    1: "Framing",
    2: "Pings/Pongs",
    3: "Reserved Bits",
    4: "Opcodes",
    5: "Fragmentation",
    6: "UTF-8 Handling",
    7: "Close Handling",
    8: "Misc",
    9: "Limits/Performance",
    10: "Misc",
    11: "",
    12: "WebSocket Compression (different payloads)",
    13: "WebSocket Compression (different parameters)",
}
VERDICTS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
GOOD = {"OK", "INFORMATIONAL"}


def case_key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def section_of(case_id):
    head = case_id.split(".", 1)[0]
    return int(head) if head.isdigit() else head


def compile_patterns(patterns):
    """wstest's pattern syntax: '.' is literal, '*' matches anything, anchored."""
    return [re.compile("^" + re.escape(p).replace(r"\*", ".*") + "$") for p in patterns]


def matches(case_id, regexes):
    return any(r.match(case_id) for r in regexes)


def load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"summarize.py: cannot read {what} {path}: {e}", file=sys.stderr)
        sys.exit(2)


def case_detail(report_dir, entry):
    """The 'result' texts from a case's own report file, when it is there."""
    path = os.path.join(report_dir, entry.get("reportfile") or "")
    try:
        with open(path, encoding="utf-8") as f:
            rep = json.load(f)
    except (OSError, ValueError):
        return ""
    parts = []
    if entry.get("behavior") not in GOOD and rep.get("result"):
        parts.append(rep["result"])
    if entry.get("behaviorClose") not in GOOD and rep.get("resultClose"):
        parts.append("close: " + rep["resultClose"])
    return "; ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("index", help="reports/<dir>/index.json written by wstest")
    ap.add_argument("--config", required=True, help="the wstest spec the run used")
    ap.add_argument("--agent", default="wsengine")
    ap.add_argument("--markdown", help="also write the summary to this file")
    ap.add_argument("--min-cases", type=int, default=250,
                    help="fail when fewer judged cases ran (default 250)")
    ap.add_argument("--title", default="Autobahn|Testsuite results")
    ap.add_argument("--label", default="autobahn",
                    help="word before the closing 'N passed, N failed' line")
    args = ap.parse_args()

    index = load_json(args.index, "report")
    spec = load_json(args.config, "config")
    report_dir = os.path.dirname(os.path.abspath(args.index))

    if args.agent not in index:
        print(f"summarize.py: agent {args.agent!r} not in {args.index} "
              f"(agents: {', '.join(sorted(index)) or 'none'})", file=sys.stderr)
        results = {}
    else:
        results = index[args.agent]

    wanted = compile_patterns(spec.get("cases", ["*"]))
    excl_patterns = list(spec.get("exclude-cases", []))
    agent_excl = spec.get("exclude-agent-cases", {}) or {}
    for agent_pat, case_pats in agent_excl.items():
        if matches(args.agent, compile_patterns([agent_pat])):
            excl_patterns += list(case_pats)
    excluded = compile_patterns(excl_patterns)

    def is_excluded(cid):
        return matches(cid, excluded) or not matches(cid, wanted)

    expected = [c for c in SUITE_CASES if not is_excluded(c)]
    missing = sorted(set(expected) - set(results), key=case_key)

    # Per-section counts.
    suite_sections = Counter(section_of(c) for c in SUITE_CASES)
    sections = sorted(set(suite_sections) | {section_of(c) for c in results},
                      key=lambda s: (not isinstance(s, int), s if isinstance(s, int) else 0, str(s)))
    rows = []
    totals = Counter()
    problems = []
    judged_total = 0
    for sec in sections:
        ids = sorted((c for c in results if section_of(c) == sec), key=case_key)
        sec_expected = [c for c in SUITE_CASES if section_of(c) == sec]
        fully_excluded = bool(sec_expected) and all(is_excluded(c) for c in sec_expected)
        counts = Counter()
        close_bad = 0
        for cid in ids:
            entry = results[cid]
            behavior = entry.get("behavior", "?")
            close = entry.get("behaviorClose", "?")
            counts[behavior if behavior in VERDICTS else "FAILED"] += 1
            if close not in GOOD:
                close_bad += 1
            if is_excluded(cid):
                continue
            judged_total += 1
            if behavior not in GOOD or close not in GOOD:
                problems.append((cid, behavior, close, entry.get("remoteCloseCode"),
                                 case_detail(report_dir, entry)))
        n_missing = sum(1 for c in missing if section_of(c) == sec)
        if fully_excluded:
            note = "excluded" + (f" ({len(ids)} ran anyway, not judged)" if ids else "")
        else:
            note = f"{n_missing} did not run" if n_missing else ""
            totals.update(counts)
            totals["close"] += close_bad
            totals["cases"] += len(ids)
        name = SECTION_NAMES.get(sec, "") if isinstance(sec, int) else ""
        rows.append([str(sec), name, str(len(ids))] + [str(counts[v]) for v in VERDICTS]
                    + [str(close_bad), note])
    rows.append(["**Total**", "(not excluded)", str(totals["cases"])]
                + [str(totals[v]) for v in VERDICTS] + [str(totals["close"]), ""])

    header = ["Section", "Name", "Cases"] + VERDICTS + ["Close not OK", "Note"]
    lines = [f"## {args.title}", "",
             f"Agent `{args.agent}`, Autobahn|Testsuite {SUITE_VERSION}; "
             f"excluded: {', '.join(excl_patterns) or 'none'}.", "",
             "| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header) - 1)) + "|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]

    failures = []
    if problems:
        failures.append(f"{len(problems)} case(s) with a verdict other than OK/INFORMATIONAL")
    if missing:
        shown = ", ".join(missing[:15]) + (" ..." if len(missing) > 15 else "")
        failures.append(f"{len(missing)} case(s) did not run: {shown}")
    if judged_total < args.min_cases:
        failures.append(f"only {judged_total} case(s) ran outside the exclusions "
                        f"(at least {args.min_cases} expected)")

    detail = []
    if problems:
        detail += ["", "### Cases not passing", "",
                   "| Case | Behavior | Close | Close code | Detail |", "|---|---|---|---:|---|"]
        for cid, behavior, close, code, text in sorted(problems, key=lambda p: case_key(p[0])):
            text = text.replace("|", "\\|").replace("\n", " ")
            if len(text) > 160:
                text = text[:157] + "..."
            detail.append(f"| {cid} | {behavior} | {close} | {code if code is not None else ''} | {text} |")

    informational = sorted(
        (c for c, e in results.items() if not is_excluded(c)
         and "INFORMATIONAL" in (e.get("behavior"), e.get("behaviorClose"))), key=case_key)
    if informational:
        detail += ["", "Informational (not judged by the suite): " + ", ".join(informational) + "."]

    passed = judged_total - len(problems)
    verdict = "PASS" if not failures else "FAIL: " + "; ".join(failures)
    tail = ["", f"Result: {verdict}"]
    text = "\n".join(lines + detail + tail) + "\n"
    sys.stdout.write(text)
    # The plain closing line CI logs understand.
    print(f"{args.label}: {passed} passed, {len(problems) + len(missing)} failed")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
