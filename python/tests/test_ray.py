"""textreuse.ray on a local Ray: a distributed build equals a CLI build of the same posts."""

from __future__ import annotations

import json
import os
import random
import time

import pytest

import textreuse
from conftest import cli_query, run_cli
from gen_posts import generate, write_jsonl

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
import ray.data  # noqa: E402

import textreuse.ray  # noqa: E402

N_POSTS = int(os.environ.get("TEXTREUSE_RAY_POSTS", "30000"))


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def table_of(posts):
    return pa.Table.from_pylist(posts)


def test_ray_build_equals_cli_build(local_ray, tmp_path):
    posts = list(generate(N_POSTS, seed=13))
    write_jsonl(posts, tmp_path / "posts.jsonl")
    run_cli("build", "--input", tmp_path / "posts.jsonl", "--index", tmp_path / "cli", "--quiet")
    ds = ray.data.from_arrow(table_of(posts))
    report = textreuse.ray.build_index(ds, str(tmp_path / "ray"), blocks=4)
    assert len(report["blocks"]) == 4 and report["segments"] >= 4
    assert sum(b["posts"] for b in report["blocks"]) == N_POSTS
    assert report["posts"] == sum(b["indexed"] for b in report["blocks"])
    assert report["duplicate_ids"] == []
    assert not (tmp_path / "ray.staging").exists()
    assert len(textreuse.Index.open(tmp_path / "ray")) == len(textreuse.Index.open(tmp_path / "cli"))
    rng = random.Random(5)
    texts = [p["text"] for p in rng.sample(posts, 1000)]
    texts += [t[: len(t) // 2] for t in texts[:100]]
    want = cli_query(tmp_path / "cli", texts, limit=0, uncapped=True)
    assert sum(len(h) for h in want) > 1000
    assert cli_query(tmp_path / "ray", texts, limit=0, uncapped=True) == want
    assert run_cli("verify", "--index", tmp_path / "ray").returncode == 0


def test_ray_duplicates_across_blocks_in_order(local_ray, tmp_path):
    rows = [{"id": f"p{i}", "text": f"post number {i} says something else entirely {i * 7}"} for i in range(400)]
    # The second half repeats ten ids of the first half: the first block's posts win.
    for i in range(10):
        rows[200 + i] = {"id": f"p{i}", "text": "a different text under a repeated id"}
    ds = ray.data.from_arrow(table_of(rows))

    def first_block_last(staged):
        # The block of the first rows finishes last: blocks still come back in order.
        if textreuse.Index.open(staged).post("p100") is not None:
            time.sleep(2)

    report = textreuse.ray.build_index(ds, str(tmp_path / "idx"), blocks=2, memory="64M", _on_staged=first_block_last)
    assert sorted(d["id"] for d in report["duplicate_ids"]) == sorted(f"p{i}" for i in range(10))
    idx = textreuse.Index.open(tmp_path / "idx")
    assert len(idx) == 390
    assert idx.post("p3")["text"] == rows[3]["text"]


def test_ray_missing_column_and_failed_job_publish_nothing(local_ray, tmp_path):
    ds = ray.data.from_arrow(table_of([{"post": "1", "body": "some text here"}]))
    with pytest.raises(textreuse.InvalidInput, match="no column 'id'"):
        textreuse.ray.build_index(ds, str(tmp_path / "a"))
    with pytest.raises(textreuse.InvalidInput, match="no column 'created_at'"):
        textreuse.ray.build_index(ds, str(tmp_path / "a"), id_col="post", text_col="body", ts_col="created_at")
    with pytest.raises(textreuse.InvalidInput, match="CPUs"):
        textreuse.ray.build_index(ds, str(tmp_path / "a"), id_col="post", text_col="body", threads=64)
    rows = [{"id": f"p{i}", "text": f"text number {i} of the failing job"} for i in range(400)]
    rows[350]["text"] = None  # a null text fails its task
    bad = ray.data.from_arrow(table_of(rows))
    with pytest.raises(textreuse.Error, match="nothing was published"):
        textreuse.ray.build_index(bad, str(tmp_path / "b"), blocks=4)
    assert not (tmp_path / "b" / "CURRENT").exists()
    assert not any((tmp_path / "b").glob("seg-*"))
    assert not (tmp_path / "b.staging").exists()


def test_ray_retried_task_leaves_no_duplicate_segment(local_ray, tmp_path):
    marker = tmp_path / "died-once"

    def die_once(staged):
        # Runs in the worker after its task staged a build: the first time, the worker
        # dies (as a lost node would) and Ray runs the task again.
        if not marker.exists():
            marker.write_text(staged)
            os._exit(1)

    posts = list(generate(3000, seed=9))
    ds = ray.data.from_arrow(table_of(posts))
    report = textreuse.ray.build_index(ds, str(tmp_path / "idx"), blocks=3, memory="256M", _on_staged=die_once)
    assert marker.exists(), "the injected failure ran"
    assert report["segments"] == 3 and report["duplicate_ids"] == []
    m = json.loads((tmp_path / "idx" / (tmp_path / "idx" / "CURRENT").read_text().strip()).read_text())
    assert len(m["segments"]) == 3
    assert not (tmp_path / "idx.staging").exists()
    idx = textreuse.Index.open(tmp_path / "idx")
    assert len(idx) == 3000 - sum(b["empty"] for b in report["blocks"])
    write_jsonl(posts, tmp_path / "posts.jsonl")
    run_cli("build", "--input", tmp_path / "posts.jsonl", "--index", tmp_path / "cli", "--quiet")
    texts = [p["text"] for p in posts[::5]]
    assert cli_query(tmp_path / "idx", texts) == cli_query(tmp_path / "cli", texts)
