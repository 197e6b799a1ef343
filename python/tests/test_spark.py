"""textreuse.spark in local mode: a distributed build equals a CLI build of the same posts."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import pytest

import textreuse
import textreuse.spark
from conftest import cli_query, run_cli
from gen_posts import generate, write_jsonl

pyspark = pytest.importorskip("pyspark")
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

N_POSTS = int(os.environ.get("TEXTREUSE_SPARK_POSTS", "200000"))
SCHEMA = T.StructType(
    [
        T.StructField("id", T.StringType()),
        T.StructField("text", T.StringType()),
        T.StructField("account", T.StringType()),
        T.StructField("platform", T.StringType()),
        T.StructField("ts", T.LongType()),
    ]
)


def session(master: str) -> SparkSession:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return (
        SparkSession.builder.master(master)
        .appName("textreuse-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )


@pytest.fixture(scope="module")
def spark():
    s = session("local[2]")
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("spark")
    posts = list(generate(N_POSTS, seed=11))
    path = d / "posts.jsonl"
    write_jsonl(posts, path)
    return d, path, posts


def test_distributed_build_equals_cli_build(spark, corpus):
    d, path, posts = corpus
    t = time.perf_counter()
    run_cli("build", "--input", path, "--index", d / "cli", "--quiet")
    cli_secs = time.perf_counter() - t

    size = path.stat().st_size
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(size // 8 + 1))
    df = spark.read.schema(SCHEMA).json(str(path))
    assert df.rdd.getNumPartitions() == 8
    t = time.perf_counter()
    report = textreuse.spark.build_index(df, str(d / "spark"))
    spark_secs = time.perf_counter() - t
    print(
        f"\n{N_POSTS} posts: CLI build {cli_secs:.2f} s ({N_POSTS / cli_secs:,.0f} posts/s), "
        f"Spark local[2] build (8 partitions) {spark_secs:.2f} s ({N_POSTS / spark_secs:,.0f} posts/s), "
        f"ratio {cli_secs / spark_secs:.2f}"
    )
    assert len(report["partitions"]) == 8 and report["segments"] >= 8
    assert report["posts"] == sum(p["indexed"] for p in report["partitions"])
    assert report["duplicate_ids"] == []
    assert not (d / "spark.staging").exists()

    cli_idx, spark_idx = textreuse.Index.open(d / "cli"), textreuse.Index.open(d / "spark")
    assert len(cli_idx) == len(spark_idx) == report["live_posts"]
    rng = random.Random(3)
    texts = [p["text"] for p in rng.sample(posts, 3000)]
    texts += [t[: len(t) // 2] for t in texts[:300]]
    want = cli_query(d / "cli", texts, limit=0, uncapped=True)
    got = cli_query(d / "spark", texts, limit=0, uncapped=True)
    assert sum(len(h) for h in want) > 3000
    assert got == want
    assert run_cli("verify", "--index", d / "spark").returncode == 0
    # A distributed build is an index like any other: merge, then the same answers.
    run_cli("merge", "--index", d / "spark", "--max-segments", "1")
    assert cli_query(d / "spark", texts[:500], limit=0) == want[:500]


def test_duplicates_across_partitions_and_fingerprint(spark, tmp_path):
    posts = list(generate(4000, seed=5))
    # Ids repeated in later partitions (with other texts): the first occurrence wins.
    dups = [dict(posts[i], text=f"another text entirely number {i} with words") for i in (3, 1500)]
    rows = posts[:3000] + dups + posts[3000:]
    df = spark.createDataFrame(spark.sparkContext.parallelize(rows, 4), SCHEMA)
    report = textreuse.spark.build_index(df, str(tmp_path / "spark"), memory="256M")
    assert sorted(x["id"] for x in report["duplicate_ids"]) == ["p1500", "p3"]
    assert all("part-00000" in x["first"] or "part-00001" in x["first"] for x in report["duplicate_ids"])
    write_jsonl(rows, tmp_path / "rows.jsonl")
    r = run_cli("build", "--input", tmp_path / "rows.jsonl", "--index", tmp_path / "cli")
    assert r.stderr.count('duplicate id "') == 2
    texts = [p["text"] for p in rows[::7]]
    assert cli_query(tmp_path / "spark", texts) == cli_query(tmp_path / "cli", texts)

    # fingerprint(): the library's fingerprints, as columns.
    out = textreuse.spark.fingerprint(df.limit(500)).collect()
    fp = textreuse.Fingerprinter()
    for row in out:
        f = fp.fingerprint(row["text"])
        assert row["content_hash"] == f["content_hash"]
        assert bytes(row["signature"]) == f["signature"]
        assert [k & (2**64 - 1) for k in row["band_keys"]] == f["band_keys"]
    # A null text and one with no token left get nulls; the others their fingerprints.
    odd = spark.createDataFrame(
        [("a", None), ("b", "🎉 #only 123"), ("c", "one two three four")], "id string, text string"
    )
    got = {r["id"]: r for r in textreuse.spark.fingerprint(odd).collect()}
    for k in ("a", "b"):
        assert (got[k]["content_hash"], got[k]["signature"], got[k]["band_keys"]) == (None, None, None)
    assert got["c"]["content_hash"] == fp.fingerprint("one two three four")["content_hash"]
    assert bytes(got["c"]["signature"]) == fp.fingerprint("one two three four")["signature"]


def test_missing_column_and_failed_job_publish_nothing(spark, tmp_path):
    df = spark.createDataFrame([("1", "some text here")], "post string, body string")
    with pytest.raises(textreuse.InvalidInput, match="no column 'id'"):
        textreuse.spark.build_index(df, str(tmp_path / "a"))
    with pytest.raises(textreuse.InvalidInput, match="no column 'created_at'"):
        textreuse.spark.build_index(df, str(tmp_path / "a"), id_col="post", text_col="body", ts_col="created_at")
    rows = [(f"p{i}", f"text number {i} of the failing job", None, None, None) for i in range(400)]
    rows[350] = ("p350", None, None, None, None)  # a null text fails its task
    bad = spark.createDataFrame(spark.sparkContext.parallelize(rows, 4), SCHEMA)
    with pytest.raises(textreuse.Error, match="nothing was published"):
        textreuse.spark.build_index(bad, str(tmp_path / "b"))
    assert not (tmp_path / "b" / "CURRENT").exists()
    assert not any((tmp_path / "b").glob("seg-*"))
    assert not (tmp_path / "b.staging").exists()


def test_retried_task_leaves_no_duplicate_segment(tmp_path):
    SparkSession.getActiveSession() and SparkSession.getActiveSession().stop()
    s = session("local[2,3]")  # two threads, a failed task is tried up to three times

    def fail_first_attempt(partition, attempt, staged):
        # Runs on the executor after the task staged its build (a closure, so pickled by
        # value): the first attempt of partition 1 dies after writing, as a lost executor
        # would.
        if partition == 1 and attempt == 0:
            raise RuntimeError("injected failure after staging")

    try:
        posts = list(generate(3000, seed=9))
        df = s.createDataFrame(s.sparkContext.parallelize(posts, 3), SCHEMA)
        report = textreuse.spark.build_index(df, str(tmp_path / "idx"), memory="256M", _on_staged=fail_first_attempt)
        attempts = {p["partition"]: p["attempt"] for p in report["partitions"]}
        assert attempts == {0: 0, 1: 1, 2: 0}
        assert report["segments"] == 3 and report["duplicate_ids"] == []
        m = json.loads((tmp_path / "idx" / (tmp_path / "idx" / "CURRENT").read_text().strip()).read_text())
        assert len(m["segments"]) == 3
        assert not (tmp_path / "idx.staging").exists()
        idx = textreuse.Index.open(tmp_path / "idx")
        assert len(idx) == 3000 - sum(p["empty"] for p in report["partitions"])
        write_jsonl(posts, tmp_path / "posts.jsonl")
        run_cli("build", "--input", tmp_path / "posts.jsonl", "--index", tmp_path / "cli", "--quiet")
        texts = [p["text"] for p in posts[::5]]
        assert cli_query(tmp_path / "idx", texts) == cli_query(tmp_path / "cli", texts)
    finally:
        s.stop()
