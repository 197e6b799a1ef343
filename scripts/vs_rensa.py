#!/usr/bin/env python3
"""Fingerprint throughput against rensa's signature step, run alternately in the same go.

Each round times, one after the other:
- rensa: `RMinHash.from_token_sets(sets, 128, 42)` over the kit's cached shingle sets of the
  corpus (the call `peers_bench.py` times as `sig_s`: signatures only, shingles given);
- textreuse: `BIN fingerprint -j 1 --input CORPUS/posts.jsonl > /dev/null` (end to end:
  JSON, normalization, shingles, MinHash, output), for each BIN.

This VM's speed drifts by 2-3x within minutes, so the ratio is taken within each round,
and the maximum and median over rounds are printed too. rensa spreads `from_token_sets`
over all cores (rayon); its rate per CPU-second is printed next to its wall-clock rate,
and `RAYON_NUM_THREADS=1` in the environment keeps it to one core. textreuse runs on one
core (`-j 1`).

Run with the eval kit's Python (it has rensa), after `peers_bench.py` built the cache:

    ~/.cache/textreuse-eval/venv/bin/python scripts/vs_rensa.py ROUNDS CORPUS BIN [BIN...]
"""
import os
import pickle
import statistics
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, corpus, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    from rensa import RMinHash

    cache = os.path.join(corpus, "shingles_k3_t2s.pkl")
    with open(cache, "rb") as f:
        sets = [s for s in pickle.load(f) if s]
    posts = os.path.join(corpus, "posts.jsonl")
    with open(posts, "rb") as f:
        n_posts = sum(1 for _ in f)
    rows = []
    for r in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        RMinHash.from_token_sets(sets, 128, 42)
        rensa_wall, rensa_cpu = time.perf_counter() - t, time.process_time() - c
        ours = []
        for b in bins:
            t = time.perf_counter()
            subprocess.run([b, "fingerprint", "-j", "1", "--input", posts],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            ours.append(time.perf_counter() - t)
        rensa_rate = len(sets) / rensa_wall
        line = (f"round {r + 1}: rensa {rensa_rate / 1e3:.0f}K sigs/s "
                f"({len(sets) / rensa_cpu / 1e3:.0f}K per CPU-second)")
        for b, w in zip(bins, ours):
            line += f" | {os.path.basename(b)} {n_posts / w / 1e3:.0f}K posts/s, ratio {n_posts / w / rensa_rate:.2f}"
        print(line, flush=True)
        rows.append((rensa_rate, [n_posts / w for w in ours]))
    print(f"rensa: max {max(r[0] for r in rows) / 1e3:.0f}K/s, "
          f"median {statistics.median(r[0] for r in rows) / 1e3:.0f}K/s")
    for j, b in enumerate(bins):
        rates = [r[1][j] for r in rows]
        ratios = [r[1][j] / r[0] for r in rows]
        print(f"{os.path.basename(b)}: max {max(rates) / 1e3:.0f}K posts/s, "
              f"median {statistics.median(rates) / 1e3:.0f}K/s; ratio to rensa in the same round: "
              f"median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}")


if __name__ == "__main__":
    main()
