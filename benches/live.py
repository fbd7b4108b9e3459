#!/usr/bin/env python3
"""What the live view costs: zero-latency runs of `sensor-actors run` without `--http` and with
`--http 127.0.0.1:0` and a scraper reading /metrics every second, alternating, reporting
reads/s and CPU seconds of each run, their medians and the median of the side-by-side ratios.

    python3 benches/live.py [--sensors 100000] [--rounds 200] [--repeat 5] [--every 1.0] [--watch 0] BINARY

Reads/s is N * (R - 1) over the time from round 1's log line to round R's (start-up and summary
left out), as benches/outputs.py measures it; CPU is the whole process's user + system time.
The scraper starts when the server logs its address and checks that every scrape answered 200;
with `--watch K` it first asks for K sensors (`/api/sensors/{id}`), which the live view then
watches (polls) every round, as a dashboard showing them does.
Standard library only.
"""
import argparse, os, re, statistics, subprocess, tempfile, threading, time, urllib.request

def scrape(address, every, stop, counts, watch):
    for k in range(1, watch + 1):
        with urllib.request.urlopen(f"http://{address}/api/sensors/temperature-{k:06}", timeout=5) as r:
            r.read()
            counts["ok" if r.status == 200 else "bad"] += 1
    while not stop.wait(every):
        try:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
                r.read()
                counts["ok" if r.status == 200 else "bad"] += 1
        except OSError:
            counts["bad"] += 1

def run(binary, config, rounds, sensors, http, every, watch):
    args = [binary, "run", "--config", config] + (["--http", "127.0.0.1:0"] if http else [])
    env = dict(os.environ, RUST_LOG="info")
    started, seen, stop, counts = time.time(), {}, threading.Event(), {"ok": 0, "bad": 0}
    scraper = None
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stderr:
        m = re.search(r"live view on http://([^/]+)/", line)
        if m:
            scraper = threading.Thread(target=scrape, args=(m.group(1), every, stop, counts, watch))
            scraper.start()
        m = re.search(r"round (\d+): ", line)
        if m:
            seen[int(m.group(1))] = time.time() - started
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    if scraper:
        scraper.join()
    if status != 0 or 1 not in seen or rounds not in seen or (http and (counts["ok"] == 0 or counts["bad"])):
        raise SystemExit(f"{binary} failed (status {status}, scrapes {counts})")
    return sensors * (rounds - 1) / (seen[rounds] - seen[1]), usage.ru_utime + usage.ru_stime, counts["ok"]

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sensors", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--watch", type=int, default=0)
    p.add_argument("binary")
    a = p.parse_args()
    work = tempfile.mkdtemp()
    config = os.path.join(work, "zero.toml")
    with open(config, "w") as f:
        f.write(f'[collection]\ninterval = "0s"\nread_timeout = "2s"\nrounds = {a.rounds}\nseed = 1\n\n'
                f'[[sensors]]\nkind = "temperature"\ncount = {a.sensors}\nlatency = ["0ms", "0ms"]\nerror_rate = 0.0\n')
    pairs = []
    for i in range(a.repeat):
        # Alternate which goes first, so that neither always meets the warmer machine.
        order = (False, True) if i % 2 == 0 else (True, False)
        pair = {http: run(a.binary, config, a.rounds, a.sensors, http, a.every, a.watch) for http in order}
        pairs.append(pair)
        off, on = pair[False], pair[True]
        print(f"pair {i + 1}: without {off[0] / 1e6:.3f}M reads/s {off[1]:.2f} s CPU; "
              f"with --http {on[0] / 1e6:.3f}M reads/s {on[1]:.2f} s CPU, {on[2]} scrapes; "
              f"ratio {on[0] / off[0]:.3f}", flush=True)
    for http, label in ((False, "without --http"), (True, "with --http + scraper")):
        r = [p[http] for p in pairs]
        print(f"{label:22}: {statistics.median(x for x, _, _ in r) / 1e6:.3f}M reads/s, "
              f"{statistics.median(c for _, c, _ in r):.2f} s CPU (medians of {len(r)})")
    ratios = [p[True][0] / p[False][0] for p in pairs]
    cpu = [p[True][1] / p[False][1] for p in pairs]
    print(f"with / without: reads/s {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}), "
          f"CPU {statistics.median(cpu):.3f} ({min(cpu):.3f}-{max(cpu):.3f})")

if __name__ == "__main__":
    main()
