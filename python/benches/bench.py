#!/usr/bin/env python3
"""Measurements of the Python package, each run alternately against its reference in the
same process and go (this VM's speed drifts by 2-3x within minutes, so ratios are taken
within each round; medians over rounds are printed).

1. fingerprint: `Fingerprinter.fingerprint_many(texts)` against what a rensa user does:
   shingles made in Python with the eval kit's `common.shingle_text`, then
   `RMinHash.from_token_sets(sets, 128, 42)` (end to end from a list of str, both).
2. query: `Index.query_many(texts)` (hits as Python dicts) and `Index.query_arrow(texts)`
   (one pyarrow Table) against the library's own `Index::query_batch` on the same index and
   texts (timed inside the extension, no Python objects made), same options.
3. spark: `textreuse.spark.build_index` in `local[2]` (8 partitions, from JSONL and from
   Parquet) against `textreuse build` of the same JSONL, in posts/s. The Spark session is
   started once, outside the timings (a cluster that is already up).
4. ray: `textreuse.ray.build_index` on a local Ray (Parquet, split into 8 blocks) against
   `textreuse build` of the same JSONL, in posts/s (not in the default set).

Each prints its rounds, then the median and the least of the rounds' ratios, and the ratio
of the two sides' best times ("best_of": other processes only ever slow a side down, so on a
shared machine it is the steadiest of the three).

Usage (with the package and rensa installed; the eval kit at ../shared/eval):

    python python/benches/bench.py --corpus DIR [--fp-corpus DIR] [--what fingerprint,query,spark] [--rounds 3]
        [--bin target/release/textreuse] [--eval-kit ../shared/eval]

DIR holds `posts.jsonl` (the kit's gen_corpus.py output, or any JSONL with id/text/...).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def load(corpus):
    with open(os.path.join(corpus, "posts.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def bench_fingerprint(posts, rounds, kit):
    sys.path.insert(0, kit)
    from common import shingle_text
    from rensa import RMinHash

    import textreuse

    texts = [p["text"] for p in posts]
    fp = textreuse.Fingerprinter()
    ratios, ours, theirs = [], [], []
    for r in range(rounds):
        t = time.perf_counter()
        out = fp.fingerprint_many(texts)
        a = time.perf_counter() - t
        t = time.perf_counter()
        sets = [shingle_text(x) for x in texts]
        sigs = RMinHash.from_token_sets([s for s in sets if s], 128, 42)
        b = time.perf_counter() - t
        del sets
        ours.append(a)
        theirs.append(b)
        ratios.append(b / a)
        print(
            f"  round {r}: textreuse fingerprint_many {a:.3f} s ({len(texts) / a:,.0f} posts/s), "
            f"rensa + Python shingles {b:.3f} s ({len(texts) / b:,.0f} posts/s); {b / a:.1f}x"
        )
    assert out["signature"].shape[0] == len(texts) and len(sigs) > 0
    return {
        "posts": len(texts),
        "textreuse_s_median": statistics.median(ours),
        "rensa_s_median": statistics.median(theirs),
        "speedup_median": statistics.median(ratios),
        "speedup_min": min(ratios),
        "speedup_best_of": min(theirs) / min(ours),
    }


def bench_query(posts, rounds, binary, tmp):
    import random

    import textreuse

    idx = os.path.join(tmp, "q-idx")
    subprocess.run([binary, "build", "--input", os.path.join(args.corpus, "posts.jsonl"), "--index", idx, "--quiet"], check=True)
    index = textreuse.Index.open(idx)
    rng = random.Random(1)
    texts = [p["text"] for p in rng.sample(posts, min(5000, len(posts)))]
    index.query_many(texts[:500])  # warm the page cache
    index.query_arrow(texts[:500])  # and import pyarrow
    ratios, arrow_ratios, ours, arrows, theirs = [], [], [], [], []
    for r in range(rounds):
        # Alternate which goes first (ABBA), so that a drift in the VM's speed within a
        # round does not favour one side.
        if r % 2:
            b, n_rust = index._time_query_batch(texts, limit=10)
        # The last round's hits are freed outside the timing, as query_batch's are.
        hits = table = None
        t = time.perf_counter()
        hits = index.query_many(texts, limit=10)
        a = time.perf_counter() - t
        t = time.perf_counter()
        table = index.query_arrow(texts, limit=10)
        c = time.perf_counter() - t
        if not r % 2:
            b, n_rust = index._time_query_batch(texts, limit=10)
        n_py = sum(len(h) for h in hits)
        assert n_py == n_rust == table.num_rows, (n_py, n_rust, table.num_rows)
        ratios.append(b / a)
        arrow_ratios.append(b / c)
        ours.append(a)
        arrows.append(c)
        theirs.append(b)
        print(
            f"  round {r} ({'query_batch' if r % 2 else 'query_many'} first): query_many {len(texts) / a:,.0f} queries/s, "
            f"query_arrow {len(texts) / c:,.0f}, Rust query_batch {len(texts) / b:,.0f} ({n_rust} hits); "
            f"query_many at {100 * b / a:.0f}%, query_arrow at {100 * b / c:.0f}%"
        )
    return {
        "queries": len(texts),
        "python_share_median": statistics.median(ratios),
        "python_share_min": min(ratios),
        "python_share_best_of": min(theirs) / min(ours),
        "arrow_share_median": statistics.median(arrow_ratios),
        "arrow_share_min": min(arrow_ratios),
        "arrow_share_best_of": min(theirs) / min(arrows),
    }


def to_parquet(src, n, path):
    """`src` (JSONL) as one Parquet file of 8 row groups at `path`."""
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    pq.write_table(pj.read_json(src), path, row_group_size=max(1, n // 8))
    return path


def cli_build_secs(binary, src, tmp):
    """Seconds `textreuse build` takes for `src`."""
    out = os.path.join(tmp, "cli-idx")
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([binary, "build", "--input", src, "--index", out, "--quiet"], check=True)
    return time.perf_counter() - t


def bench_spark(posts, rounds, binary, tmp):
    from pyspark.sql import SparkSession

    import textreuse.spark

    src = os.path.join(args.corpus, "posts.jsonl")
    n = len(posts)
    parquet = to_parquet(src, n, os.path.join(tmp, "posts.parquet"))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    schema = "id string, text string, account string, platform string, ts long"

    def spark_build(kind):
        if kind == "jsonl":
            spark.conf.set("spark.sql.files.maxPartitionBytes", str(os.path.getsize(src) // 8 + 1))
            df = spark.read.schema(schema).json(src)
        else:
            spark.conf.set("spark.sql.files.maxPartitionBytes", str(os.path.getsize(parquet) // 8 + 1))
            df = spark.read.parquet(parquet)
        assert df.rdd.getNumPartitions() == 8, df.rdd.getNumPartitions()
        out = os.path.join(tmp, "spark-idx")
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        textreuse.spark.build_index(df, out)
        return time.perf_counter() - t

    # Warm up the JVM (both readers' code paths) and the Python workers: a cluster that is
    # already up. Without the JSON warm-up the first JSONL round ran at ~43% against ~60%.
    spark_build("parquet")
    spark_build("jsonl")
    res = {"posts": n, "rounds": []}
    for r in range(rounds):
        cli = cli_build_secs(binary, src, tmp)
        sj = spark_build("jsonl")
        sp = spark_build("parquet")
        res["rounds"].append({"cli_s": cli, "spark_jsonl_s": sj, "spark_parquet_s": sp})
        print(
            f"  round {r}: CLI build {n / cli:,.0f} posts/s; Spark local[2] from JSONL "
            f"{n / sj:,.0f} posts/s ({100 * cli / sj:.0f}% of the CLI), from Parquet "
            f"{n / sp:,.0f} posts/s ({100 * cli / sp:.0f}%)"
        )
    spark.stop()
    res["jsonl_share_median"] = statistics.median(x["cli_s"] / x["spark_jsonl_s"] for x in res["rounds"])
    res["parquet_share_median"] = statistics.median(x["cli_s"] / x["spark_parquet_s"] for x in res["rounds"])
    res["jsonl_share_min"] = min(x["cli_s"] / x["spark_jsonl_s"] for x in res["rounds"])
    res["parquet_share_min"] = min(x["cli_s"] / x["spark_parquet_s"] for x in res["rounds"])
    best = {k: min(x[k] for x in res["rounds"]) for k in ("cli_s", "spark_jsonl_s", "spark_parquet_s")}
    res["jsonl_share_best_of"] = best["cli_s"] / best["spark_jsonl_s"]
    res["parquet_share_best_of"] = best["cli_s"] / best["spark_parquet_s"]
    return res


def bench_ray(posts, rounds, binary, tmp):
    import ray
    import ray.data

    import textreuse.ray

    src = os.path.join(args.corpus, "posts.jsonl")
    n = len(posts)
    parquet = to_parquet(src, n, os.path.join(tmp, "posts-ray.parquet"))
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def ray_build():
        ds = ray.data.read_parquet(parquet)  # one file: one block, so blocks=8 splits it
        out = os.path.join(tmp, "ray-idx")
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        textreuse.ray.build_index(ds, out, blocks=8)
        return time.perf_counter() - t

    ray_build()  # workers started and warm: a cluster that is already up
    res = {"posts": n, "rounds": []}
    for r in range(rounds):
        cli = cli_build_secs(binary, src, tmp)
        rb = ray_build()
        res["rounds"].append({"cli_s": cli, "ray_parquet_s": rb})
        print(f"  round {r}: CLI build {n / cli:,.0f} posts/s; Ray from Parquet {n / rb:,.0f} posts/s ({100 * cli / rb:.0f}%)")
    ray.shutdown()
    shares = [x["cli_s"] / x["ray_parquet_s"] for x in res["rounds"]]
    res["parquet_share_median"] = statistics.median(shares)
    res["parquet_share_min"] = min(shares)
    res["parquet_share_best_of"] = min(x["cli_s"] for x in res["rounds"]) / min(x["ray_parquet_s"] for x in res["rounds"])
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--fp-corpus", help="corpus for the fingerprint comparison (default: --corpus)")
    ap.add_argument("--what", default="fingerprint,query,spark")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "textreuse"))
    ap.add_argument("--eval-kit", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "eval"))
    args = ap.parse_args()
    posts = load(args.corpus)
    results = {}
    with tempfile.TemporaryDirectory(prefix="textreuse-bench-") as tmp:
        for what in args.what.split(","):
            print(f"== {what} ({len(posts)} posts, {os.cpu_count()} cores)")
            if what == "fingerprint":
                fp_posts = load(args.fp_corpus) if args.fp_corpus else posts
                print(f"   ({len(fp_posts)} posts for this one)")
                results[what] = bench_fingerprint(fp_posts, args.rounds, args.eval_kit)
            elif what == "query":
                results[what] = bench_query(posts, args.rounds, os.path.abspath(args.bin), tmp)
            elif what == "spark":
                results[what] = bench_spark(posts, args.rounds, os.path.abspath(args.bin), tmp)
            elif what == "ray":
                results[what] = bench_ray(posts, args.rounds, os.path.abspath(args.bin), tmp)
    print(json.dumps(results, indent=1))
