#!/usr/bin/env python3
"""Times `textreuse fingerprint -j 1 --input FILE` for several binaries, alternating them.

This machine's speed can drift by 2x within minutes, so binaries are compared in the same
go: run i of every binary before run i+1 of any. Prints, per binary, the minimum and
median wall time and child CPU time, and posts/s at the minimum.

    python3 scripts/ab_fingerprint.py RUNS FILE BIN [BIN...]
"""
import resource
import statistics
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    runs, path, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    wall = {b: [] for b in bins}
    cpu = {b: [] for b in bins}
    for _ in range(runs):
        for b in bins:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([b, "fingerprint", "-j", "1", "--input", path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            wall[b].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[b].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    for b in bins:
        w, c = sorted(wall[b]), sorted(cpu[b])
        print(f"{b}: wall min {w[0] * 1e3:.0f} ms ({lines / w[0] / 1e3:.0f}K posts/s), "
              f"median {statistics.median(w) * 1e3:.0f} ms ({lines / statistics.median(w) / 1e3:.0f}K/s); "
              f"cpu min {c[0] * 1e3:.0f} ms, median {statistics.median(c) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
