#!/usr/bin/env python3
"""Checks the files of `sensor-actors run --out DIR` against each other.

Every event count of summary.json must equal the lines of that event in events.jsonl,
`restarts` the `restarted` lines of sensors, `reads.ok` the lines of readings.jsonl, the
anomaly counts the lines of anomalies.jsonl, and every file must hold whole JSON lines only.
Usage: python3 scripts/check-outputs.py DIR   (exit 0 when all agree, 1 with the differences)
"""
import collections
import json
import sys
from pathlib import Path


def lines(path):
    text = path.read_text()
    if text and not text.endswith("\n"):
        raise SystemExit(f"{path}: the last line is incomplete")
    return [json.loads(line) for line in text.splitlines()]


def main(out):
    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    events = lines(out / "events.jsonl")
    readings = lines(out / "readings.jsonl")
    anomalies = lines(out / "anomalies.jsonl")
    sensors = {s["id"] for s in summary["sensors"]}
    problems = []

    journal = collections.Counter(e["event"] for e in events)
    for kind in sorted(set(journal) | set(summary["events"])):
        if journal[kind] != summary["events"].get(kind, 0):
            problems.append(f"event {kind}: summary {summary['events'].get(kind, 0)}, events.jsonl {journal[kind]}")
    # `restarts` counts the sensors' restarts; a group actor's own restart is journaled too.
    restarted = sum(1 for e in events if e["event"] == "restarted" and e.get("sensor") in sensors)
    if restarted != summary["restarts"]:
        problems.append(f"restarts: summary {summary['restarts']}, restarted lines {restarted}")
    if len(readings) != summary["reads"]["ok"]:
        problems.append(f"reads.ok: summary {summary['reads']['ok']}, readings.jsonl {len(readings)}")
    found = collections.Counter(a["detector"] for a in anomalies)
    for detector in sorted(set(found) | set(summary["anomalies"])):
        if found[detector] != summary["anomalies"].get(detector, 0):
            problems.append(f"anomalies {detector}: summary {summary['anomalies'].get(detector, 0)}, anomalies.jsonl {found[detector]}")

    print(f"{out}: {summary['rounds']} rounds, {len(readings)} readings, {len(events)} events, {len(anomalies)} anomalies")
    for p in problems:
        print("  differs:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1]))
