#!/usr/bin/env python3
"""Checks the files of `sensor-actors run --out DIR` against each other.

Every event count of summary.json must equal the lines of that event in events.jsonl,
`restarts` the `restarted` lines of sensors, `reads.ok` the lines of readings.jsonl (or the data
rows of readings.csv, after its header), the anomaly counts the lines of anomalies.jsonl, and
every file must hold whole lines only. A folder holds readings.jsonl or readings.csv; if it holds
both (written by a version that did not remove the other), the more recently modified is read.
Usage: python3 scripts/check-outputs.py DIR   (exit 0 when all agree, 1 with the differences)
"""
import collections
import csv
import json
import sys
from pathlib import Path


def lines(path):
    return [json.loads(line) for line in whole_text(path).splitlines()]


CSV_HEADER = ["round", "sensor", "kind", "value", "unit", "timestamp", "latency_ms", "source_row", "source_time"]


def whole_text(path):
    with open(path, newline="") as f:  # no newline translation: a quoted field keeps its \r
        text = f.read()
    if text and not text.endswith("\n"):
        raise SystemExit(f"{path}: the last line is incomplete")
    return text


def readings_file(out):
    """The readings file of the folder: readings.jsonl or readings.csv (the newer if both)."""
    jsonl, csv_path = out / "readings.jsonl", out / "readings.csv"
    if jsonl.exists() and csv_path.exists():
        return csv_path if csv_path.stat().st_mtime > jsonl.stat().st_mtime else jsonl
    return csv_path if csv_path.exists() else jsonl


def csv_rows(path):
    """The data rows of readings.csv as dicts like the JSON lines (numbers parsed, the empty
    fields of replayed data left out)."""
    rows = list(csv.reader(whole_text(path).splitlines(keepends=True)))
    if not rows:
        return []
    if rows[0] != CSV_HEADER:
        raise SystemExit(f"{path}: line 1: expected the header {','.join(CSV_HEADER)}")
    readings = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(CSV_HEADER):
            raise SystemExit(f"{path}: row {number}: expected {len(CSV_HEADER)} fields, got {len(row)}")
        reading = dict(zip(CSV_HEADER, row))
        reading["round"] = int(reading["round"])
        for field in ("value", "latency_ms"):
            reading[field] = float(reading[field]) if reading[field] else None
        if reading["source_row"]:
            reading["source_row"] = int(reading["source_row"])
        else:
            del reading["source_row"]
        if not reading["source_time"]:
            del reading["source_time"]
        readings.append(reading)
    return readings


def main(out):
    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    events = lines(out / "events.jsonl")
    readings_path = readings_file(out)
    readings = csv_rows(readings_path) if readings_path.suffix == ".csv" else lines(readings_path)
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
        problems.append(f"reads.ok: summary {summary['reads']['ok']}, {readings_path.name} {len(readings)}")
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
