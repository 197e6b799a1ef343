#!/usr/bin/env python3
"""Random 4 KiB reads per second that this machine's storage serves, with 1..N threads.

A cold lookup (index pages not in the page cache) reads at least one random page per LSH
band before it can verify anything, so the storage's random-read rate bounds cold latency:
with 32 bands, 32 reads at R reads/s take at least 32/R seconds however they overlap.

    python3 scripts/random_reads.py FILE [THREADS...]

FILE should be large (an index's band or text file) and not in the page cache; reads use
O_DIRECT, so the page cache is bypassed either way. Prints reads/s and the mean latency.
"""
import mmap
import os
import random
import sys
import threading
import time


def run(path, threads, per_thread=200):
    size = os.path.getsize(path)
    pages = size // 4096

    def work(seed):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT requires
        rng = random.Random(seed)
        try:
            for _ in range(per_thread):
                os.preadv(fd, [buf], rng.randrange(pages) * 4096)
        finally:
            os.close(fd)

    ts = [threading.Thread(target=work, args=(s,)) for s in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.perf_counter() - t0
    n = threads * per_thread
    print(f"{threads:3d} threads: {n / secs:8.0f} random 4 KiB reads/s, "
          f"{secs / per_thread * 1e6:8.0f} us per read per thread")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for t in [int(x) for x in sys.argv[2:]] or [1, 4, 16, 32]:
        run(sys.argv[1], t)


if __name__ == "__main__":
    main()
