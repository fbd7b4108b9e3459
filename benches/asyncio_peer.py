#!/usr/bin/env python3
"""The seed's design in Python asyncio, measured like `sensor-actors bench`.

    python3 benches/asyncio_peer.py --sensors 10000 [--rounds 10] [--latency-rounds 4]

prints one JSON object with the figures of `sensor-actors bench` (spawn, reads per second,
round overhead, memory). Standard library only. `benches/compare.py` runs it next to
`sensor-actors bench` and the plain-tokio floor at the same N.

The design: every sensor is an object whose `read()` coroutine waits its latency with
`asyncio.sleep` and returns its next random-walk value; a round is one `asyncio.gather` over
every sensor's read; each reading goes through an `asyncio.Queue` to a processor task that keeps
running statistics (Welford) per sensor. Sensor 0 always takes the upper latency bound, so the
slowest read of a round is exactly 500 ms in the overhead pass.
"""

import argparse
import asyncio
import json
import random
import resource
import time

SLOWEST = 0.5
FASTEST = 0.1


def current_rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Sensor:
    __slots__ = ("index", "value", "latency", "rng")

    def __init__(self, index, latency):
        self.index = index
        self.rng = random.Random(index + 1)
        self.value = self.rng.uniform(20.0, 30.0)
        self.latency = latency

    async def read(self):
        lo, hi = self.latency
        await asyncio.sleep(lo if lo == hi else self.rng.uniform(lo, hi))
        self.value += self.rng.uniform(-0.5, 0.5)
        return self.index, self.value, time.time()


class Stats:
    __slots__ = ("count", "mean", "m2", "min", "max")

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max = float("inf"), float("-inf")

    def push(self, x):
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)
        self.min = min(self.min, x)
        self.max = max(self.max, x)


async def processor(queue, stats):
    while True:
        item = await queue.get()
        if item is None:
            return
        index, value, _timestamp = item
        stats[index].push(value)


async def run_pass(n, rounds, latency):
    spawn_started = time.perf_counter()
    sensors = [Sensor(i, (latency[1], latency[1]) if i == 0 else latency) for i in range(n)]
    stats = [Stats() for _ in range(n)]
    spawn_seconds = time.perf_counter() - spawn_started
    idle_rss = current_rss_bytes()
    queue = asyncio.Queue()
    processing = asyncio.create_task(processor(queue, stats))
    started, cpu_started = time.perf_counter(), cpu_seconds()
    walls = []
    for _round in range(rounds):
        round_started = time.perf_counter()
        readings = await asyncio.gather(*(s.read() for s in sensors))
        for reading in readings:
            queue.put_nowait(reading)
        walls.append(time.perf_counter() - round_started)
    queue.put_nowait(None)
    await processing
    return {
        "spawn_seconds": spawn_seconds,
        "idle_rss_bytes": idle_rss,
        "walls": walls,
        "reads": sum(s.count for s in stats),
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu_started,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--latency-rounds", type=int, default=4)
    args = parser.parse_args()
    n = args.sensors
    baseline = current_rss_bytes()
    fast = asyncio.run(run_pass(n, max(args.rounds, 1), (0.0, 0.0)))
    slow = asyncio.run(run_pass(n, max(args.latency_rounds, 1), (FASTEST, SLOWEST)))
    overheads = sorted((w - SLOWEST) * 1000.0 for w in slow["walls"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    per_sensor = lambda rss: max(rss - baseline, 0) / n  # noqa: E731
    print(
        json.dumps(
            {
                "sensors": n,
                "rounds": args.rounds,
                "latency_rounds": args.latency_rounds,
                "spawn_seconds": fast["spawn_seconds"],
                "reads": fast["reads"],
                "reads_per_second": fast["reads"] / fast["seconds"],
                "reads_per_cpu_second": fast["reads"] / max(fast["cpu_seconds"], 1e-9),
                "overhead_ms_p50": overheads[len(overheads) // 2],
                "overhead_ms_max": overheads[-1],
                "baseline_rss_bytes": baseline,
                "idle_rss_bytes": fast["idle_rss_bytes"],
                "peak_rss_bytes": peak,
                "idle_bytes_per_sensor": per_sensor(fast["idle_rss_bytes"]),
                "peak_bytes_per_sensor": per_sensor(peak),
            }
        )
    )


if __name__ == "__main__":
    main()
