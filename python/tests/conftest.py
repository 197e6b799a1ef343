"""Shared fixtures: the CLI binary, the sample data, a CLI-built index of it."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample.jsonl"


def cli_path() -> Path:
    """The textreuse CLI: $TEXTREUSE_BIN, else the repository's release build."""
    p = Path(os.environ.get("TEXTREUSE_BIN", REPO / "target" / "release" / "textreuse"))
    if not p.exists():
        pytest.skip(f"no textreuse binary at {p}: run `cargo build --release` first")
    return p


def run_cli(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(cli_path()), *map(str, args)], capture_output=True, text=True, **kw)
    if check and r.returncode not in (0, 1):
        raise AssertionError(f"textreuse {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r


def cli_query(index: Path, texts: List[str], limit: int = 0, uncapped: bool = False) -> List[List[tuple]]:
    """`query --json --limit N` for each text: per query, the (id, similarity) hits sorted
    by id (the order among equal similarities is a tie-break). With `uncapped`, asserts that
    no band probe reached the per-probe candidate cap (which applies per segment, so only
    uncapped answers are comparable between indexes of different segment counts)."""
    qfile = index.parent / f"{index.name}-queries.jsonl"
    with open(qfile, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n")
    r = run_cli("query", "--index", index, "--input", qfile, "--json", "--limit", str(limit))
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == len(texts)
    if uncapped:
        assert not any(o.get("truncated") for o in out), "a probe was capped"
    return [sorted((h["id"], h["similarity"]) for h in o["hits"]) for o in out]


def py_hits(hits: List[dict]) -> List[tuple]:
    return sorted((h["id"], h["similarity"]) for h in hits)


def sample_posts() -> List[Dict]:
    with open(SAMPLE, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="session")
def posts() -> List[Dict]:
    return sample_posts()


@pytest.fixture(scope="session")
def cli_index(tmp_path_factory) -> Path:
    """data/sample.jsonl built by the CLI."""
    d = tmp_path_factory.mktemp("cli") / "idx"
    run_cli("build", "--input", SAMPLE, "--index", d, "--quiet")
    return d


@pytest.fixture(scope="session")
def queries(posts) -> List[str]:
    """Texts to look up: a sample of the posts' texts, some edited."""
    rng = random.Random(7)
    texts = [p["text"] for p in rng.sample(posts, 300)]
    edited = [t.replace("the", "a", 1) + " #tag 123" for t in texts[:100]]
    return texts + edited + ["", "🎉🎉 #only 123"]
