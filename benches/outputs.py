#!/usr/bin/env python3
"""What the outputs cost: zero-latency runs of `sensor-actors run` with and without `--out`,
for one or two builds side by side (interleaved, so a busy moment of a shared machine hits
both), reporting medians of reads/s and CPU seconds and the median of the side-by-side ratios.

    python3 benches/outputs.py [--sensors 100000] [--rounds 20] [--repeat 5] [--format jsonl|csv]
                               BINARY [BINARY2]

Reads/s is N * (R - 1) over the time from round 1's log line to round R's (so the start-up and
the summary are left out); CPU is the whole process's user + system time. Standard library only.
"""
import argparse, os, re, shutil, statistics, subprocess, tempfile, time

def run(binary, config, out, rounds, sensors, fmt="jsonl"):
    args = [binary, "run", "--config", config]
    if out:
        shutil.rmtree(out, ignore_errors=True)
        args += ["--out", out]
        if fmt != "jsonl":
            # Only then: builds from before the flag can still be compared in JSON Lines.
            args += ["--readings-format", fmt]
    env = dict(os.environ, RUST_LOG="info")
    started, seen = time.time(), {}
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stderr:
        m = re.search(r"round (\d+): ", line)
        if m:
            seen[int(m.group(1))] = time.time() - started
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0 or 1 not in seen or rounds not in seen:
        raise SystemExit(f"{binary} failed (status {status})")
    return sensors * (rounds - 1) / (seen[rounds] - seen[1]), usage.ru_utime + usage.ru_stime

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sensors", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl",
                   help="the readings file's format with --out")
    p.add_argument("binaries", nargs="+")
    a = p.parse_args()
    work = tempfile.mkdtemp()
    config = os.path.join(work, "zero.toml")
    with open(config, "w") as f:
        f.write(f'[collection]\ninterval = "0s"\nread_timeout = "2s"\nrounds = {a.rounds}\nseed = 1\n\n'
                f'[[sensors]]\nkind = "temperature"\ncount = {a.sensors}\nlatency = ["0ms", "0ms"]\nerror_rate = 0.0\n')
    results = {}
    for _ in range(a.repeat):
        for out in (None, os.path.join(work, "out")):
            for b in a.binaries:
                results.setdefault((b, bool(out)), []).append(run(b, config, out, a.rounds, a.sensors, a.format))
    for out in (False, True):
        label = "with --out" if out else "without --out"
        for b in a.binaries:
            r = results[(b, out)]
            print(f"{label:14} {b}: {statistics.median(x for x, _ in r) / 1e6:.2f}M reads/s, "
                  f"{statistics.median(c for _, c in r):.2f} s CPU (medians of {len(r)})")
        if len(a.binaries) == 2:
            first, second = results[(a.binaries[0], out)], results[(a.binaries[1], out)]
            ratios = [y[0] / x[0] for x, y in zip(first, second)]
            cpu = [y[1] / x[1] for x, y in zip(first, second)]
            print(f"{label:14} second / first: reads/s {statistics.median(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f}), CPU {statistics.median(cpu):.2f} "
                  f"({min(cpu):.2f}-{max(cpu):.2f})")
    for b in a.binaries:
        ok = statistics.median(x for x, _ in results[(b, True)]) / statistics.median(x for x, _ in results[(b, False)])
        print(f"{b}: reads/s with --out / without: {ok:.2f}")
    shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
