"""The Python package against the CLI on the same data, threads, and bad inputs."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import textreuse
from conftest import SAMPLE, cli_query, py_hits, run_cli


# ------------------------------------------------------------------ fingerprints


def test_fingerprints_equal_the_cli(posts):
    texts = [p["text"] for p in posts[:500]]
    inp = Path(os.environ.get("TMPDIR", "/tmp")) / f"tr-fp-{os.getpid()}.txt"
    inp.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    r = run_cli("fingerprint", "--input", inp, "--json")
    inp.unlink()
    cli = [json.loads(line) for line in r.stdout.splitlines()]
    fp = textreuse.Fingerprinter()
    many = fp.fingerprint_many([t.replace("\n", " ") for t in texts])
    for i, (t, c) in enumerate(zip(texts, cli)):
        t = t.replace("\n", " ")
        assert fp.normalize(t) == c["normalized"]
        assert fp.tokens(t) == c["tokens"]
        one = fp.fingerprint(t)
        if c["empty"]:
            assert one is None and many["empty"][i] and many["content_hash"][i] == ""
            continue
        assert one["content_hash"] == c["content_hash"] == many["content_hash"][i]
        assert one["shingles"] == c["shingles"]
        sig = np.frombuffer(one["signature"], "<u4")
        assert (sig == many["signature"][i]).all()
        assert (fp.fingerprint(t, numpy=True)["signature"] == sig).all()
        assert one["band_keys"] == many["band_keys"][i].tolist()


def test_fingerprinter_parameters():
    fp = textreuse.Fingerprinter(shingle=2, num_perm=64, bands=16, rows=4, keep_hashtags=True)
    assert fp.params["num_perm"] == 64 and fp.params["lsh"] == {"bands": 16, "rows": 4}
    assert "taiwan" in fp.tokens("#Taiwan is here")
    f = fp.fingerprint("one two three four")
    assert len(f["signature"]) == 64 * 4 and len(f["band_keys"]) == 16
    with pytest.raises(textreuse.InvalidInput, match="bands and rows"):
        textreuse.Fingerprinter(bands=16)
    with pytest.raises(textreuse.InvalidInput):
        textreuse.Fingerprinter(num_perm=0)


# ------------------------------------------------------------------ queries


def test_query_answers_equal_the_cli(cli_index, queries):
    cli = cli_query(cli_index, queries, limit=0)
    index = textreuse.Index.open(cli_index)
    many = index.query_many(queries, limit=0)
    assert sum(len(h) for h in many) > len(queries) // 2, "the sample has near-copies"
    for q, want, got in zip(queries, cli, many):
        assert py_hits(got) == want, q
        assert py_hits(index.query(q, limit=0)) == want
    # The fields of `query --json`.
    hit = many[0][0]
    assert set(hit) >= {"id", "similarity", "account", "platform", "ts", "text"}
    # limit keeps the best hits.
    top = index.query(queries[0], limit=1)
    assert len(top) == 1 and top[0]["similarity"] == max(s for _, s in cli[0])


def test_in_memory_and_prefetch_answer_as_mapped(cli_index, queries):
    mapped = textreuse.Index.open(cli_index)
    want = mapped.query_many(queries, limit=0)
    for opts in ({"in_memory": True}, {"prefetch": True}, {"in_memory": True, "prefetch": True}):
        index = textreuse.Index.open(cli_index, **opts)
        assert index.query_many(queries, limit=0) == want, opts
        assert [index.query(q, limit=3) for q in queries[:20]] == [
            mapped.query(q, limit=3) for q in queries[:20]
        ], opts
    assert textreuse.Index(cli_index, in_memory=True).query(queries[0]) == mapped.query(queries[0])


def test_python_build_equals_cli_build(tmp_path, cli_index, posts, queries):
    import pandas as pd
    import pyarrow as pa

    df = pd.DataFrame(posts)
    for kind, data in [("pandas", df), ("arrow", pa.Table.from_pandas(df)), ("dicts", posts)]:
        d = tmp_path / kind
        with textreuse.IndexBuilder(d, memory="64M") as b:
            b.add_many(data)
        assert b.stats["indexed"] == len(posts) - b.stats["empty"]
        assert cli_query(d, queries) == cli_query(cli_index, queries), kind
    index = textreuse.Index.open(tmp_path / "pandas")
    p = posts[10]
    got = index.post(p["id"])
    assert got == {"id": str(p["id"]), "account": p["account"], "platform": p["platform"],
                   "ts": p["ts"], "text": p["text"]}
    assert index.post("no such id") is None
    st = index.stats()
    assert st["posts"] == len(index) and st["segments"] == 1
    index.verify()


def test_query_many_equals_query(cli_index, queries):
    # query_many makes its dicts while the pool still looks up (a path of its own): the
    # same dicts, in the same order, as one query at a time, for every option that
    # changes what a hit holds.
    index = textreuse.Index.open(cli_index)
    plat = index.query(queries[0], limit=1)[0]["platform"]
    for kw in [dict(limit=10), dict(limit=0), dict(limit=3, with_text=False),
               dict(limit=0, min_similarity=0.3, exact=False), dict(limit=0, platform=plat)]:
        many = index.query_many(queries, **kw)
        assert many == [index.query(q, **kw) for q in queries], kw
    assert index.query_many([]) == []
    assert index.query_many(["", "   "]) == [[], []]
    # The garbage collector, held off while dicts are made, is left as the caller had it.
    import gc

    assert gc.isenabled()
    index.query_many(queries)
    assert gc.isenabled()
    gc.disable()
    try:
        index.query_many(queries)
        assert not gc.isenabled()
    finally:
        gc.enable()


def _rows_of(many, with_text=True):
    """query_many's dicts as query_arrow's rows: every column, nulls where a dict omits one."""
    rows = []
    for i, hits in enumerate(many):
        for h in hits:
            r = {"query": i, "id": h["id"], "similarity": h["similarity"], "account": h["account"],
                 "platform": h["platform"], "ts": h["ts"]}
            if with_text:
                r["text"] = h.get("text")
            r["cluster"] = h.get("cluster")
            r["expanded"] = h.get("expanded", False)
            rows.append(r)
    return rows


def test_query_arrow_equals_query_many(tmp_path, cli_index, queries):
    import pyarrow as pa

    index = textreuse.Index.open(cli_index)
    plat = index.query(queries[0], limit=1)[0]["platform"]
    # 402 queries: several chunks of the pool (64 each), so batches are joined in order.
    for kw in [dict(limit=10), dict(limit=0), dict(limit=3, with_text=False),
               dict(limit=0, min_similarity=0.3, exact=False), dict(limit=0, platform=plat)]:
        table = index.query_arrow(queries, **kw)
        assert isinstance(table, pa.Table)
        want = _rows_of(index.query_many(queries, **kw), kw.get("with_text", True))
        assert len(want) > 100, kw
        assert table.to_pylist() == want, kw
        assert ("text" in table.column_names) == kw.get("with_text", True)
    # Saved clusters: the cluster column and expanded hits.
    saved = tmp_path / "saved"
    shutil.copytree(cli_index, saved)
    run_cli("clusters", "--index", saved, "--save", "--json")
    index = textreuse.Index.open(saved)
    table = index.query_arrow(queries, limit=0, expand=True)
    want = _rows_of(index.query_many(queries, limit=0, expand=True))
    assert table.to_pylist() == want
    assert any(r["cluster"] is not None for r in want) and any(r["expanded"] for r in want)
    # No text, no hit: an empty table with every column.
    empty = index.query_arrow([])
    assert empty.num_rows == 0 and empty.column_names[:2] == ["query", "id"]
    assert index.query_arrow(["", "   "]).num_rows == 0
    assert len(index.query_arrow(queries[:5]).to_pandas()) == sum(len(h) for h in index.query_many(queries[:5]))
    # An Arrow column is read in place: the same rows as from the list of str.
    want = index.query_arrow(queries, limit=0)
    col = pa.chunked_array([pa.array(queries[:150]), pa.array(queries[150:])])
    assert index.query_arrow(col, limit=0).equals(want)
    assert index.query_arrow(pa.array(queries, pa.large_string()), limit=0).equals(want)
    with pytest.raises(textreuse.InvalidInput, match="row 1"):
        index.query_arrow(pa.array(["fine", None]))
    with pytest.raises(textreuse.InvalidInput, match="text"):
        index.query_arrow(["fine", 3])
    with pytest.raises(textreuse.InvalidInput):
        index.query_arrow(["fine", "bad \ud800 surrogate"])


def test_query_many_reports_a_damaged_text_file(tmp_path, cli_index, queries):
    # A lookup's error in the pool reaches the caller as an exception (no hang, no crash).
    broken = tmp_path / "broken"
    shutil.copytree(cli_index, broken)
    text = next(broken.glob("seg-*/text"))
    b = bytearray(text.read_bytes())
    # The frames only: the block offsets at the front of the file (about 5% of it) are
    # checked when the index is opened.
    for i in range(len(b) // 4, len(b) * 19 // 20):
        b[i] ^= 0x5A
    text.write_bytes(bytes(b))
    index = textreuse.Index.open(broken)
    with pytest.raises(textreuse.CorruptIndex, match="text"):
        index.query_many(queries, limit=0)
    # Without texts the same lookups need no text block.
    assert len(index.query_many(queries, limit=0, with_text=False, exact=False)) == len(queries)


def test_filters(cli_index, queries):
    index = textreuse.Index.open(cli_index)
    hits = index.query_many(queries[:100], limit=0)
    plat = next(h["platform"] for hs in hits for h in hs)
    for q, hs in zip(queries[:100], hits):
        only = index.query(q, limit=0, platform=plat)
        assert py_hits(only) == py_hits([h for h in hs if h["platform"] == plat])
        since = index.query(q, limit=0, since=1672600000)
        assert py_hits(since) == py_hits([h for h in hs if h["ts"] is not None and h["ts"] >= 1672600000])
    assert index.query(queries[0], min_similarity=1.0, limit=0) == [
        h for h in index.query(queries[0], limit=0) if h["similarity"] >= 1.0
    ]


def test_threads_share_one_index(cli_index, queries):
    index = textreuse.Index.open(cli_index)
    want = [py_hits(h) for h in index.query_many(queries, limit=0)]
    errors, results = [], {}

    def work(k):
        try:
            for i in range(k, len(queries), 8):
                results[i] = py_hits(index.query(queries[i], limit=0))
            results[("many", k)] = [py_hits(h) for h in index.query_many(queries[k::8], limit=0)]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [results[i] for i in range(len(queries))] == want
    for k in range(8):
        assert results[("many", k)] == want[k::8]


def test_fingerprint_many_in_threads(posts):
    fp = textreuse.Fingerprinter()
    texts = [p["text"] for p in posts]
    want = fp.fingerprint_many(texts)["signature"]
    out = [None] * 4

    def work(i):
        out[i] = fp.fingerprint_many(texts)["signature"]

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all((o == want).all() for o in out)


# ------------------------------------------------------------------ living indexes


def test_append_delete_merge_reload(tmp_path, posts):
    d = tmp_path / "idx"
    with textreuse.IndexBuilder(d) as b:
        b.add_many(posts[:2000])
    index = textreuse.Index.open(d)
    assert len(index) == 2000 - b.stats["empty"] and index.generation == 1
    with textreuse.IndexBuilder(d, mode="append") as b:
        b.add_many(posts[1990:])  # ten ids already indexed
    assert b.stats["duplicate_ids"] == 10
    assert [s["id"] for s in b.skipped if "duplicate" in s["reason"]] == [str(p["id"]) for p in posts[1990:2000]]
    assert index.reload() and index.generation == 2
    n = len(index)
    with textreuse.IndexBuilder(d, mode="append") as b:
        assert b.delete([posts[0]["id"], "nope"]) == ["nope"]
    index.reload()
    assert len(index) == n - 1 and index.post(posts[0]["id"]) is None
    # A budget too small for any merge: refused, or with within_budget nothing merged.
    with pytest.raises(textreuse.Error, match="memory budget"):
        textreuse.merge(d, max_segments=1, memory="16M")
    m = textreuse.merge(d, max_segments=1, memory="16M", within_budget=True)
    assert m["merged"] == [] and m["segments_after"] == 2
    m = textreuse.merge(d, max_segments=1, within_budget=True)
    assert m["segments_after"] == 1 and len(m["merged"]) == 2
    assert index.reload() and index.stats()["segments"] == 1 and len(index) == n - 1
    index.verify()


def test_errors_are_exceptions(tmp_path, cli_index):
    with pytest.raises(textreuse.IndexNotFound):
        textreuse.Index.open(tmp_path)
    with pytest.raises(textreuse.IndexExists):
        textreuse.IndexBuilder(cli_index)
    d = tmp_path / "locked"
    first = textreuse.IndexBuilder(d)
    with pytest.raises(textreuse.IndexLocked, match="another writer"):
        textreuse.IndexBuilder(d)
    first.abort()
    # A damaged file: truncated.
    broken = tmp_path / "broken"
    shutil.copytree(cli_index, broken)
    sigs = next(broken.glob("seg-*/sigs"))
    sigs.write_bytes(sigs.read_bytes()[:100])
    with pytest.raises(textreuse.CorruptIndex):
        textreuse.Index.open(broken)
    assert issubclass(textreuse.CorruptIndex, textreuse.Error)
    # A finished builder refuses more work.
    b = textreuse.IndexBuilder(tmp_path / "done")
    b.finish()
    with pytest.raises(textreuse.Error, match="finished"):
        b.add("1", "text")


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "text, match",
    [
        (None, "text is None"),
        (b"bytes text", "text is bytes"),
        ("bad \ud800 surrogate", "text is not valid UTF-8"),
        (12, "text must be str"),
    ],
)
def test_bad_texts(tmp_path, text, match):
    fp = textreuse.Fingerprinter()
    for call in (fp.normalize, fp.tokens, fp.fingerprint, lambda t: fp.fingerprint_many(["ok", t])):
        with pytest.raises(textreuse.InvalidInput, match=match):
            call(text)
    b = textreuse.IndexBuilder(tmp_path / "i")
    with pytest.raises(textreuse.InvalidInput, match=match):
        b.add("1", text)
    with pytest.raises(textreuse.InvalidInput, match="row 2: " + match):
        b.add_many([("1", "fine text here"), ("2", text)])
    b.abort()


def test_bad_timestamps_and_ids(tmp_path):
    import pandas as pd

    b = textreuse.IndexBuilder(tmp_path / "i")
    with pytest.raises(textreuse.InvalidInput, match="ts is NaN"):
        b.add("1", "some text", ts=math.nan)
    with pytest.raises(textreuse.InvalidInput, match="row 2: ts is NaN"):
        b.add_many(pd.DataFrame({"id": ["a", "b"], "text": ["x y z", "u v w"], "ts": [1.0, np.nan]}))
    with pytest.raises(textreuse.InvalidInput, match="not unix seconds or an RFC 3339"):
        b.add("1", "some text", ts="yesterday")
    with pytest.raises(textreuse.InvalidInput, match="id is None"):
        b.add(None, "some text")
    with pytest.raises(textreuse.InvalidInput, match="id is empty"):
        b.add("", "some text")
    # Accepted forms of time: int, RFC 3339, datetime64 columns (NaT = unknown).
    b.add("1", "one two three", ts="2023-01-01T00:00:00Z")
    b.add_many(pd.DataFrame({"id": [2, 3], "text": ["four five six", "seven eight"],
                             "ts": pd.to_datetime(["2023-01-02", None])}))
    b.finish()
    index = textreuse.Index.open(tmp_path / "i")
    assert index.post("1")["ts"] == 1672531200
    assert index.post(2)["ts"] == 1672617600 and index.post("3")["ts"] is None


def test_missing_columns(tmp_path):
    import pandas as pd
    import pyarrow as pa

    b = textreuse.IndexBuilder(tmp_path / "i")
    df = pd.DataFrame({"post_id": ["1"], "body": ["hello there world"]})
    with pytest.raises(textreuse.InvalidInput, match="no column 'id'"):
        b.add_many(df)
    with pytest.raises(textreuse.InvalidInput, match="no column 'text'"):
        b.add_many(pa.Table.from_pandas(df), id_col="post_id")
    with pytest.raises(textreuse.InvalidInput, match="no 'text' key"):
        b.add_many([{"id": "1", "body": "x"}])
    with pytest.raises(textreuse.InvalidInput, match="not str"):
        b.add_many("a string")
    b.add_many(df, id_col="post_id", text_col="body")
    assert b.finish()["indexed"] == 1


def test_bad_query_arguments(cli_index):
    index = textreuse.Index.open(cli_index)
    with pytest.raises(textreuse.InvalidInput, match="min_similarity"):
        index.query("x", min_similarity=1.5)
    with pytest.raises(textreuse.InvalidInput, match="text is None"):
        index.query(None)
    with pytest.raises(textreuse.InvalidInput, match="list of str"):
        index.query_many("one string")
    with pytest.raises(textreuse.InvalidInput, match="row 1: text is bytes"):
        index.query_many(["ok", b"no"])


# ------------------------------------------------------------------ clusters, staging


def test_clusters_equal_the_cli(cli_index):
    posts, clusters = textreuse.clusters(cli_index)
    r = run_cli("clusters", "--index", cli_index, "--csv")
    lines = r.stdout.splitlines()[1:]
    import csv

    rows = list(csv.reader(lines))
    assert len(posts) == len(rows) > 0
    assert list(zip(posts["cluster"].astype(int).astype(str), posts["id"])) == [(r[0], r[1]) for r in rows]
    assert clusters["size"].sum() == len(posts)
    assert set(clusters.columns) >= {"cluster", "size", "texts", "accounts", "platforms", "first_ts", "last_ts"}
    sizes = posts.groupby("cluster").size()
    assert (clusters.set_index("cluster")["size"] == sizes).all()
    c0 = clusters.iloc[0]
    assert sum(c0["platforms"].values()) == c0["size"]
    arrow_posts, _ = textreuse.clusters(cli_index, as_arrow=True)
    assert arrow_posts.num_rows == len(posts)


def test_clusters_contained_and_core_text_equal_the_cli(cli_index):
    seen_core = seen_contained = False
    for flags, kw in [
        ([], {}),
        (["--containment", "0.3"], {"containment": 0.3}),
        (["--no-core-text"], {"core_texts": False}),
    ]:
        r = run_cli("clusters", "--index", cli_index, "--json", *flags)
        want = [json.loads(line) for line in r.stdout.splitlines()]
        _, c = textreuse.clusters(cli_index, **kw)
        assert c["cluster"].tolist() == [w["cluster"] for w in want]
        assert c["contained"].tolist() == [w["contained"] for w in want]
        assert c["core_text"].tolist() == [w["core_text"] for w in want]
        _, ca = textreuse.clusters(cli_index, as_arrow=True, **kw)
        assert ca.column("core_text").to_pylist() == [w["core_text"] for w in want]
        seen_core |= any(w["core_text"] for w in want)
        seen_contained |= any(w["contained"] for w in want)
        if kw.get("core_texts") is False:
            assert c["core_text"].isna().all()
    assert seen_core and seen_contained
    with pytest.raises(textreuse.InvalidInput, match="containment"):
        textreuse.clusters(cli_index, containment=1.5)


def test_staged_builds_publish_like_one_build(tmp_path, cli_index, posts, queries):
    staged = []
    for i, share in enumerate([posts[:1000], posts[1000:2000], posts[2000:]]):
        d = tmp_path / f"part-{i}"
        # share_of: each share trains its text dictionary on a third of the usual sample.
        with textreuse.IndexBuilder(d, segment_only=True, share_of=3) as b:
            b.add_many(share)
        staged.append(d)
    # The CLI's staged build and publish take the same path.
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"id": posts[5]["id"], "text": "a repeated id with another text"}) + "\n")
    run_cli("build", "--segment-only", "--input", extra, "--index", tmp_path / "part-3", "--quiet")
    staged.append(tmp_path / "part-3")
    r = textreuse.publish(tmp_path / "idx", staged)
    assert r["segments"] == 4 and r["staged"] == 4
    assert [(d["id"], Path(d["staged"]).name) for d in r["duplicate_ids"]] == [(str(posts[5]["id"]), "part-3")]
    assert cli_query(tmp_path / "idx", queries) == cli_query(cli_index, queries)
    assert run_cli("verify", "--index", tmp_path / "idx").returncode == 0
    with pytest.raises(textreuse.Error, match="not a staged build"):
        textreuse.publish(tmp_path / "idx2", [cli_index])
    with pytest.raises(textreuse.InvalidInput, match="segment_only"):
        textreuse.IndexBuilder(tmp_path / "idx3", share_of=2)
    with pytest.raises(textreuse.InvalidInput, match="at least 1"):
        textreuse.IndexBuilder(tmp_path / "idx4", segment_only=True, share_of=0)


def test_cli_segment_only_and_publish(tmp_path, cli_index, posts, queries):
    shares = []
    for i, part in enumerate([posts[:1500], posts[1500:]]):
        f = tmp_path / f"share{i}.jsonl"
        f.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in part), encoding="utf-8")
        run_cli("build", "--segment-only", "--input", f, "--index", tmp_path / f"staged{i}", "--quiet")
        shares.append(tmp_path / f"staged{i}")
    r = run_cli("publish", "--index", tmp_path / "idx", *shares, "--json")
    report = json.loads(r.stdout)
    assert report["segments"] == 2 and report["duplicate_ids"] == [] and report["generation"] == 1
    assert not any(s.exists() for s in shares)
    assert cli_query(tmp_path / "idx", queries) == cli_query(cli_index, queries)
    # Publishing into an existing index needs --append (or --force).
    run_cli("build", "--segment-only", "--input", tmp_path / "share0.jsonl", "--index", tmp_path / "again", "--quiet")
    r = run_cli("publish", "--index", tmp_path / "idx", tmp_path / "again", check=False)
    assert r.returncode == 2 and "already holds an index" in r.stderr
    r = run_cli("publish", "--index", tmp_path / "idx", tmp_path / "again", "--append")
    assert r.stderr.count('duplicate id "') == 1500 - sum(1 for p in posts[:1500] if not textreuse.Fingerprinter().tokens(p["text"]))
