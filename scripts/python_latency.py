#!/usr/bin/env python3
"""Warm lookup latency through the Python binding (`textreuse.Index.query`), one call at a
time, as a Python service makes them.

    python3 scripts/python_latency.py INDEX QUERIES.jsonl [--in-memory] [--rounds N]
        [--limit 10] [--estimate-only] [--no-text]

QUERIES.jsonl holds one JSON object with a "text" field per line (the eval corpus's
`q_mix.jsonl`). Every query runs once to warm up, then `--rounds` more times, each call
timed alone; prints p50 and p99 in microseconds. The defaults are `Index.query`'s own
(exact checks near the threshold, texts returned); `--estimate-only --no-text` measures the
binding's overhead over the library's `cargo bench --bench latency` "limit 10, no text".
"""
import argparse
import json
import time

import textreuse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("index")
    ap.add_argument("queries")
    ap.add_argument("--in-memory", action="store_true", help="Index.open(..., in_memory=True)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--estimate-only", action="store_true", help="exact=False")
    ap.add_argument("--no-text", action="store_true", help="with_text=False")
    a = ap.parse_args()
    index = textreuse.Index.open(a.index, in_memory=a.in_memory)
    with open(a.queries, encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f if line.strip()]
    if not queries:
        raise SystemExit(f"{a.queries}: no queries")
    kw = dict(limit=a.limit, exact=not a.estimate_only, with_text=not a.no_text)
    for q in queries:
        index.query(q, **kw)
    times = []
    for _ in range(a.rounds):
        for q in queries:
            t = time.perf_counter()
            index.query(q, **kw)
            times.append((time.perf_counter() - t) * 1e6)
    times.sort()

    def p(q: float) -> float:
        return times[min(len(times) - 1, round((len(times) - 1) * q))]

    print(
        f"{len(times)} lookups ({len(queries)} queries x {a.rounds}), {kw}: "
        f"p50 {p(0.5):.1f} us, p99 {p(0.99):.1f} us"
    )


if __name__ == "__main__":
    main()
