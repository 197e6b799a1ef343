"""Arrow columns read in place (IndexBuilder.add_many / add_arrow, fingerprint_many):
the same posts and answers as the one-by-one path, and clear errors for nulls, bad UTF-8
and malformed arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import textreuse
from conftest import cli_query


def _table(posts, large=False, chunks=1):
    t = pa.Table.from_pylist(posts)
    if large:
        t = t.cast(
            pa.schema(
                [
                    (f.name, pa.large_string() if pa.types.is_string(f.type) else f.type)
                    for f in t.schema
                ]
            )
        )
    if chunks > 1:
        step = -(-len(posts) // chunks)
        t = pa.concat_tables([t.slice(s, step) for s in range(0, len(posts), step)])
        assert t.column("text").num_chunks == chunks
    return t


def test_arrow_builds_equal_the_cli(tmp_path, cli_index, posts, queries):
    want = cli_query(cli_index, queries)
    for name, data in [
        ("string", _table(posts)),
        ("large_string-chunked", _table(posts, large=True, chunks=3)),
        ("batch", _table(posts).to_batches()[0]),
    ]:
        d = tmp_path / name
        with textreuse.IndexBuilder(d, memory="64M") as b:
            b.add_many(data)
        assert b.stats["posts"] == len(posts), name
        assert cli_query(d, queries) == want, name
    # Hits carry the account, platform and time read from the arrays.
    index = textreuse.Index.open(tmp_path / "large_string-chunked")
    p = posts[17]
    assert index.post(p["id"]) == {
        "id": str(p["id"]), "account": p["account"], "platform": p["platform"],
        "ts": p["ts"], "text": p["text"],
    }


def test_arrow_rows_count_over_calls_and_sliced_arrays(tmp_path, posts):
    """Arrays with an offset (slices), integer ids, nulls in optional columns, rows counted
    over calls (the repeated id is reported with its row)."""
    b = textreuse.IndexBuilder(tmp_path / "i")
    b.add("first", "one two three four five")
    ids = pa.array([10, 11, 12, 13], pa.int64()).slice(1)
    texts = pa.array(["x", "six seven eight nine", "ten eleven twelve", "one two three four five"]).slice(1)
    accounts = pa.array(["a", None, "b", "c"]).slice(1)
    t = pa.table({"id": ids, "text": texts, "account": accounts})
    b.add_many(t)
    b.add_many(pa.table({"id": ["11"], "text": ["again the same id here"]}))
    assert [(s["row"], s["id"]) for s in b.skipped] == [(5, "11")]
    b.finish()
    index = textreuse.Index.open(tmp_path / "i")
    assert index.post("11")["text"] == "six seven eight nine"
    assert (index.post("11")["account"], index.post("12")["account"]) == ("", "b")
    assert index.post("10") is None and len(index) == 4


@pytest.mark.parametrize(
    "column, values, match",
    [
        ("text", ["fine text here", None], "row 2: text is null"),
        ("id", ["1", None], "row 2: id is null"),
        ("id", ["1", ""], "row 2: id is empty"),
    ],
)
def test_arrow_nulls_raise_naming_the_row(tmp_path, column, values, match):
    cols = {"id": ["1", "2"], "text": ["fine text here", "more text here"]}
    cols[column] = values
    b = textreuse.IndexBuilder(tmp_path / "i")
    with pytest.raises(textreuse.InvalidInput, match=match):
        b.add_many(pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()}))
    assert b.stats["posts"] == 0  # nothing of the batch was added
    b.abort()


def _bad_utf8():
    data = "okay".encode() + b"\xff\xfe bad"
    offsets = np.array([0, 4, len(data)], dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)])


def test_arrow_bad_utf8_and_malformed_arrays_raise(tmp_path):
    b = textreuse.IndexBuilder(tmp_path / "i")
    with pytest.raises(textreuse.InvalidInput, match="row 2: text is not valid UTF-8"):
        b.add_arrow(pa.array(["1", "2"]), _bad_utf8())
    # Offsets out of order (pyarrow's cheap validation lets them through): refused, not read.
    offsets = np.array([0, 4, 2], dtype=np.int32)
    broken = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"abcd")])
    with pytest.raises(textreuse.InvalidInput, match="row 2: text: the Arrow offsets"):
        b.add_arrow(pa.array(["1", "2"]), broken)
    with pytest.raises(textreuse.InvalidInput, match="must be an Arrow string array, not int64"):
        b.add_arrow(pa.array(["1"]), pa.array([5]))
    with pytest.raises(textreuse.InvalidInput, match="column account has 1 values, id has 2"):
        b.add_arrow(pa.array(["1", "2"]), pa.array(["a b c", "d e f"]), pa.array(["x"]))
    # Binary texts and float times take the one-by-one path, which names the bad value.
    with pytest.raises(textreuse.InvalidInput, match="row 1: text is bytes"):
        b.add_many(pa.table({"id": ["1"], "text": pa.array([b"raw"], pa.binary())}))
    with pytest.raises(textreuse.InvalidInput, match="row 2: ts is NaN"):
        b.add_many(pa.table({"id": ["1", "2"], "text": ["a b c", "d e f"], "ts": [1.5, float("nan")]}))
    assert b.stats["posts"] == 0
    b.abort()


def test_arrow_times(tmp_path):
    import datetime as dt

    utc = dt.timezone.utc
    t = pa.table({
        "id": ["1", "2", "3"],
        "text": ["one two three", "four five six", "seven eight nine"],
        "ts": pa.array([dt.datetime(2023, 1, 2, tzinfo=utc), None, dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=utc)],
                       pa.timestamp("ms", tz="UTC")),
    })
    with textreuse.IndexBuilder(tmp_path / "i") as b:
        b.add_many(t)
        b.add_many(pa.table({"id": ["4"], "text": ["ten eleven twelve"], "ts": pa.array([7], pa.int32())}))
    index = textreuse.Index.open(tmp_path / "i")
    assert [index.post(i)["ts"] for i in "1234"] == [1672617600, None, -1, 7]


def test_fingerprint_many_reads_arrow(posts):
    fp = textreuse.Fingerprinter()
    texts = [p["text"] for p in posts]
    want = fp.fingerprint_many(texts)
    chunked = pa.chunked_array([texts[:100], texts[100:]])
    for arr in (pa.array(texts), pa.array(texts, pa.large_string()), pa.array(["x"] + texts).slice(1), chunked):
        got = fp.fingerprint_many(arr)
        for k in ("signature", "band_keys", "empty", "content_hash"):
            assert (got[k] == want[k]).all(), k
    with pytest.raises(textreuse.InvalidInput, match="row 2: text is null"):
        fp.fingerprint_many(pa.array(["a b c", None]))
    out = fp.fingerprint_many(pa.array(["a b c", None]), null_as_empty=True)
    assert out["empty"].tolist() == [False, True]
    with pytest.raises(textreuse.InvalidInput, match="not valid UTF-8"):
        fp.fingerprint_many(_bad_utf8())


def test_builder_threads(tmp_path, cli_index, posts, queries):
    """A builder on a pool of its own (what each Spark task uses) builds the same index."""
    with pytest.raises(textreuse.InvalidInput, match="threads must be at least 1"):
        textreuse.IndexBuilder(tmp_path / "none", threads=0)
    with textreuse.IndexBuilder(tmp_path / "one", threads=1) as b:
        b.add_many(_table(posts))
    assert cli_query(tmp_path / "one", queries) == cli_query(cli_index, queries)
