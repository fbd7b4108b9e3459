#!/usr/bin/env python3
"""Side by side: sensor-actors, the plain-tokio and bare-actix floors and the seed's asyncio design.

    python3 benches/compare.py [--sensors 20,1000,10000,100000] [--rounds 10] [--latency-rounds 3]
                               [--repeat 1] [--python-max 100000] [--json FILE]

Builds the release binary and the floors, then for each N runs, one after the other in this
session, `benches/asyncio_peer.py`, `cargo bench --bench tokio_floor` twice (on one thread, and
on tokio's multi-thread runtime with one worker per CPU), `cargo bench --bench actix_floor` twice
(one arbiter, and one per CPU) and `sensor-actors bench`, each in a fresh process with the same
rounds, and prints their figures and the ratios of sensor-actors to each for throughput (wall
clock and per CPU second) and round overhead, and of the actix floor to the tokio floor. With
`--repeat K` every design runs K times per N, interleaved: the figures printed are medians, and
each ratio is the median (and range) of the ratios of runs made next to each other, as the
machines this runs on are shared and a single run can be off by half. Standard library only.
Figures: docs/performance.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def counts(text):
    out = []
    for item in text.split(","):
        item = item.strip().replace("_", "").lower()
        factor = 1
        if item.endswith("k"):
            item, factor = item[:-1], 1_000
        elif item.endswith("m"):
            item, factor = item[:-1], 1_000_000
        out.append(int(item) * factor)
    return out


def run_json(cmd):
    result = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        return None
    lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def sensor_actors(n, rounds, latency_rounds):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.json")
        cmd = ["target/release/sensor-actors", "bench", "--sensors", str(n), "--rounds", str(rounds),
               "--latency-rounds", str(latency_rounds), "--json", path]
        if subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
            return None
        with open(path) as f:
            results = json.load(f)["results"]
        return results[0] if results else None


def ratio(a, b):
    return a / b if a and b else float("nan")


DESIGNS = ["asyncio", "tokio", "tokio_mt", "actix", "actix_mt", "sensor_actors"]


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def median_figures(runs):
    """Each numeric figure's median over the runs of one design (None when it never ran)."""
    runs = [r for r in runs if r]
    if not runs:
        return None
    return {k: median([r.get(k) for r in runs]) for k in runs[0] if isinstance(runs[0][k], (int, float))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=counts, default=[20, 1000, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every design this many times, interleaved; print medians, and the "
                             "median and range of the ratios of runs made next to each other")
    parser.add_argument("--python-max", type=int, default=100_000,
                        help="largest N for the asyncio design (it needs ~30 s per round at 1M)")
    parser.add_argument("--json", help="also write every figure here")
    args = parser.parse_args()

    build = [["cargo", "build", "--release", "--bin", "sensor-actors"],
             ["cargo", "bench", "--bench", "tokio_floor", "--no-run"],
             ["cargo", "bench", "--bench", "actix_floor", "--no-run"]]
    for cmd in build:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    rows = []
    for n in args.sensors:
        common = ["--sensors", str(n), "--rounds", str(args.rounds), "--latency-rounds", str(args.latency_rounds)]
        floor = ["cargo", "bench", "-q", "--bench", "tokio_floor", "--", *common]
        actors = ["cargo", "bench", "-q", "--bench", "actix_floor", "--", *common]
        runs = []
        for _ in range(max(1, args.repeat)):
            run = {"sensors": n}
            run["asyncio"] = (run_json([sys.executable, "benches/asyncio_peer.py", *common])
                              if n <= args.python_max else None)
            run["tokio"] = run_json([*floor, "--threads", "1"])
            run["tokio_mt"] = run_json([*floor, "--threads", str(os.cpu_count())])
            run["actix"] = run_json([*actors, "--threads", "1"])
            run["actix_mt"] = run_json([*actors, "--threads", str(os.cpu_count())])
            run["sensor_actors"] = sensor_actors(n, args.rounds, args.latency_rounds)
            runs.append(run)
        row = {"sensors": n, "runs": runs}
        for design in DESIGNS:
            row[design] = median_figures([r[design] for r in runs])
        rows.append(row)
        print_row(row, header=len(rows) == 1)
        sys.stdout.flush()

    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cpus, {model}; rounds {args.rounds}, latency rounds {args.latency_rounds}, "
          f"{max(1, args.repeat)} run(s) of each design per N")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "latency_rounds": args.latency_rounds, "repeat": max(1, args.repeat),
                       "rows": rows}, f, indent=2)
            f.write("\n")


def ratios(runs, mine, peer, key):
    """The ratio of design `mine` to design `peer` in each run: (median, min, max)."""
    values = [ratio((r[mine] or {}).get(key), (r[peer] or {}).get(key)) for r in runs]
    values = [v for v in values if v == v]
    if not values:
        return "nan"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def print_row(row, header):
    cpus = os.cpu_count()
    names = {"asyncio": "asyncio", "tokio": "tokio 1 thread", "tokio_mt": f"tokio {cpus} thr",
             "actix": "actix 1 thread", "actix_mt": f"actix {cpus} thr", "sensor_actors": "sensor-actors"}
    if header:
        print(f"{'sensors':>8} {'design':<14} {'reads/s':>11} {'reads/cpu-s':>12} {'ovh p50 ms':>11} "
              f"{'ovh max ms':>11} {'spawn ms':>9} {'peak B/sensor':>14} {'idle B/sensor':>14}")
    for design in DESIGNS:
        f = row[design]
        name = names[design]
        if f is None:
            print(f"{row['sensors']:>8} {name:<14} {'not run':>11}")
            continue
        print(f"{row['sensors']:>8} {name:<14} {f['reads_per_second']:>11.0f} {f['reads_per_cpu_second']:>12.0f} "
              f"{f['overhead_ms_p50']:>11.1f} {f['overhead_ms_max']:>11.1f} {f['spawn_seconds'] * 1000:>9.1f} "
              f"{f['peak_bytes_per_sensor']:>14.0f} {f['idle_bytes_per_sensor']:>14.0f}")
    pairs = [("sensor_actors", "asyncio"), ("sensor_actors", "tokio"), ("sensor_actors", "tokio_mt"),
             ("sensor_actors", "actix"), ("sensor_actors", "actix_mt"), ("actix", "tokio"), ("actix_mt", "tokio_mt")]
    runs = row["runs"]
    for mine, peer in pairs:
        print(f"{'':>8} {names[mine]} / {names[peer]}: throughput "
              f"{ratios(runs, mine, peer, 'reads_per_second')}"
              f", per cpu-s {ratios(runs, mine, peer, 'reads_per_cpu_second')}"
              f", overhead p50 {ratios(runs, mine, peer, 'overhead_ms_p50')}")


if __name__ == "__main__":
    main()
