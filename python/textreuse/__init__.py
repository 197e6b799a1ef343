"""textreuse: find copy-paste campaigns in multilingual posts.

The Python face of the Rust library (the single implementation of normalization, hashing,
the index format and clustering). Build an index, look texts up, list campaigns::

    import textreuse

    with textreuse.IndexBuilder("idx/") as b:
        b.add_many(df, id_col="id", text_col="text", account_col="user", ts_col="ts")
    index = textreuse.Index.open("idx/")
    index.query("這個政府說謊", limit=5)
    posts, clusters = textreuse.clusters("idx/", min_similarity=0.5)

Errors are :class:`Error` subclasses: :class:`InvalidInput`, :class:`IndexLocked`,
:class:`IndexNotFound`, :class:`IndexExists`, :class:`CorruptIndex`,
:class:`UnsupportedVersion`, :class:`IoError`.

:mod:`textreuse.spark` builds an index from a Spark DataFrame (one staged segment per
partition, published as one generation) and fingerprints DataFrames with Arrow batches.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional, Sequence, Tuple, Union

from . import _native
from ._native import (
    CorruptIndex,
    Error,
    Fingerprinter,
    Index,
    IndexExists,
    IndexLocked,
    IndexNotFound,
    InvalidInput,
    IoError,
    UnsupportedVersion,
    merge,
    publish,
)

__version__: str = _native.__version__

__all__ = [
    "Fingerprinter",
    "Index",
    "IndexBuilder",
    "clusters",
    "merge",
    "publish",
    "Error",
    "InvalidInput",
    "IndexLocked",
    "IndexNotFound",
    "IndexExists",
    "CorruptIndex",
    "UnsupportedVersion",
    "IoError",
]

# Rows handed to the library per call when adding a table: bounds the Python objects held.
_CHUNK = 65_536


def _is_pandas(data: Any) -> bool:
    mod = type(data).__module__
    return mod.startswith("pandas") and hasattr(data, "columns") and hasattr(data, "iloc")


def _is_arrow(data: Any) -> bool:
    mod = type(data).__module__
    return mod.startswith("pyarrow") and hasattr(data, "column_names")


def _ts_column(values: Any) -> list:
    """A pandas/arrow time column as a list the library reads (datetimes -> unix seconds)."""
    import numpy as np

    arr = np.asarray(values)
    if arr.dtype.kind == "M":  # datetime64: NaT is an unknown time
        secs = arr.astype("datetime64[s]").astype("int64")
        nat = np.isnat(arr)
        return [None if n else int(s) for s, n in zip(secs.tolist(), nat.tolist())]
    if arr.dtype.kind in "iu":
        return arr.tolist()
    return list(values)


class IndexBuilder(_native.IndexBuilderNative):
    """Builds an index (or adds to one) with bounded memory; publishes it atomically.

    Args:
        path: the index directory.
        memory: memory budget for buffering and sorting (``"2G"``, ``"512M"`` or bytes).
        mode: ``"create"`` (refuse an existing index), ``"replace"`` (replace it when done)
            or ``"append"`` (add a segment to it, as ``textreuse build --append``).
        on_existing_id: when appending, ``"skip"`` posts whose id is indexed or
            ``"replace"`` the old post (``--replace``).
        store_text: store texts so hits carry them.
        segment_only: write a staged build for :func:`publish` (``build --segment-only``).
        share_of: with ``segment_only``, this build is one of that many shares of one
            distributed build (a Spark job's partitions): its text dictionaries train on
            that share of the usual sample, so all shares train about one build's worth.
        threads: worker threads of the builder's own (None: the shared pool, one per core);
            a Spark task uses ``spark.task.cpus`` of them.
        shingle, num_perm, keep_hashtags, t2s, bands, rows, threshold, seed: fingerprint
            parameters as for :class:`Fingerprinter` (an append uses the index's own).

    Use it as a context manager: the index is published when the block ends without an
    exception, and nothing is published otherwise::

        with textreuse.IndexBuilder("idx/", memory="1G") as b:
            b.add("1", "这个政府说谎", account="a", platform="weibo", ts=1672531200)
            b.add_many(df)

    Posts whose id was already added, or with no text left after normalization, are not
    indexed; :attr:`skipped` lists them with their row, as ``textreuse build`` reports them.
    """

    def __enter__(self) -> "IndexBuilder":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def add_many(
        self,
        data: Any,
        id_col: str = "id",
        text_col: str = "text",
        account_col: Optional[str] = "account",
        platform_col: Optional[str] = "platform",
        ts_col: Optional[str] = "ts",
    ) -> None:
        """Adds many posts: a pandas DataFrame, a pyarrow Table or RecordBatch, or an
        iterable of dicts (keys are the column names) or of tuples
        ``(id, text[, account[, platform[, ts]]])``.

        ``id_col`` and ``text_col`` must exist; ``account_col``, ``platform_col`` and
        ``ts_col`` are used when present (pass None to ignore one). Times may be unix
        seconds, datetimes (datetime64 columns; NaT is an unknown time) or RFC 3339
        strings; a NaN time raises :class:`InvalidInput` (use None for unknown).

        Raises:
            InvalidInput: a missing column, or a bad value (naming its row and column):
                None, bytes or a non-UTF-8 string as a text, a NaN time.
        """
        if _is_pandas(data) or _is_arrow(data):
            self._add_table(data, id_col, text_col, account_col, platform_col, ts_col)
            return
        if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
            raise InvalidInput(
                f"add_many takes a DataFrame, an Arrow table or an iterable of dicts or "
                f"tuples, not {type(data).__name__}"
            )
        cols: Tuple[list, list, list, list, list] = ([], [], [], [], [])
        for row in data:
            if isinstance(row, dict):
                if id_col not in row or text_col not in row:
                    missing = id_col if id_col not in row else text_col
                    raise InvalidInput(f"a record has no {missing!r} key: {row!r:.200}")
                vals = (
                    row[id_col],
                    row[text_col],
                    row.get(account_col) if account_col else None,
                    row.get(platform_col) if platform_col else None,
                    row.get(ts_col) if ts_col else None,
                )
            elif isinstance(row, (tuple, list)):
                if not 2 <= len(row) <= 5:
                    raise InvalidInput(
                        f"a tuple record must be (id, text[, account[, platform[, ts]]]), "
                        f"got {len(row)} values"
                    )
                vals = tuple(row) + (None,) * (5 - len(row))  # type: ignore[assignment]
            else:
                raise InvalidInput(
                    f"records must be dicts or tuples, not {type(row).__name__}"
                )
            for c, v in zip(cols, vals):
                c.append(v)
            if len(cols[0]) >= _CHUNK:
                self.add_columns(*cols)
                cols = ([], [], [], [], [])
        if cols[0]:
            self.add_columns(*cols)

    def _add_table(
        self,
        data: Any,
        id_col: str,
        text_col: str,
        account_col: Optional[str],
        platform_col: Optional[str],
        ts_col: Optional[str],
    ) -> None:
        pandas = _is_pandas(data)
        names = list(data.columns) if pandas else list(data.column_names)
        for need in (id_col, text_col):
            if need not in names:
                raise InvalidInput(
                    f"no column {need!r} (columns: {', '.join(map(str, names))}); "
                    f"name it with id_col=/text_col="
                )
        fields = [
            (c if c and c in names else None, f)
            for c, f in (
                (id_col, "id"),
                (text_col, "text"),
                (account_col, "account"),
                (platform_col, "platform"),
                (ts_col, "ts"),
            )
        ]
        if pandas:
            n = len(data)
            chunks: Iterable[Any] = (data.iloc[s : s + _CHUNK] for s in range(0, n, _CHUNK))
        elif hasattr(data, "to_batches"):  # a Table: record batches of aligned chunks
            chunks = data.to_batches(max_chunksize=_CHUNK)
        else:  # a RecordBatch
            chunks = (data.slice(s, _CHUNK) for s in range(0, data.num_rows, _CHUNK))
        for chunk in chunks:
            if pandas:
                cols = [None if c is None else chunk[c] for c, _ in fields]
                arrow = [_pandas_to_arrow(col, f) for col, (_, f) in zip(cols, fields)]
            else:
                cols = [None if c is None else chunk.column(c) for c, _ in fields]
                arrow = [_arrow_for(col, f) for col, (_, f) in zip(cols, fields)]
            if all(a is not None or c is None for a, c in zip(arrow[:4], cols[:4])):
                # Strings read in place by the library; times as int64 or per value.
                self.add_arrow(*arrow[:4], _ts_values(cols[4], pandas, arrow[4]))
            else:
                # Values Arrow cannot hold as strings (bytes, mixed types): one by one, so
                # that a bad one is named.
                self.add_columns(*[_values(col, f == "ts", pandas) for col, (_, f) in zip(cols, fields)])


def _chunk_array(col: Any) -> Any:
    """A ChunkedArray as one Array (zero-copy when it has one chunk)."""
    if hasattr(col, "chunks"):
        if col.num_chunks == 1:
            return col.chunk(0)
        import pyarrow as pa

        return pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], col.type)
    return col


def _arrow_for(col: Any, field: str) -> Any:
    """An Arrow column as the library reads it in place: a string array for id, text,
    account and platform (integer ids cast to decimal strings), an int64 array for ts; None
    when it has another type (then its values are read one by one)."""
    if col is None:
        return None
    import pyarrow as pa

    col = _chunk_array(col)
    t = col.type
    if field == "ts":
        if pa.types.is_integer(t):
            try:
                return col.cast(pa.int64())
            except (pa.ArrowInvalid, OverflowError):
                return None
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col
    if (
        getattr(pa.types, "is_string_view", None) is not None
        and pa.types.is_string_view(t)
    ) or (field == "id" and pa.types.is_integer(t)):
        return col.cast(pa.string())
    return None


def _pandas_to_arrow(col: Any, field: str) -> Any:
    """A pandas column as an Arrow array the library reads in place, or None (see
    :func:`_arrow_for`). Object columns of str convert; any other value keeps the column on
    the one-by-one path, which names the bad row."""
    if col is None or field == "ts":
        return None
    import pyarrow as pa

    try:
        arr = pa.array(col, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, UnicodeEncodeError):
        return None
    if field in ("id", "text") and arr.null_count:
        return None  # the one-by-one path says what the missing value is
    return _arrow_for(arr, field)


def _ts_values(col: Any, pandas: bool, arrow: Any) -> Any:
    """The time column for :meth:`IndexBuilder.add_arrow`: an int64 array of unix seconds
    (integers; datetimes, NaT/null an unknown time), else a list of values (floats,
    strings: each checked, a NaN named by its row)."""
    if col is None:
        return None
    if arrow is not None:
        return arrow
    import numpy as np
    import pyarrow as pa

    arr = None
    if pandas:
        arr = col.to_numpy()
    elif pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        arr = col.to_numpy(zero_copy_only=False)
    if arr is not None and arr.dtype.kind == "M":
        nat = np.isnat(arr)
        secs = arr.astype("datetime64[s]").astype("int64")
        return pa.array(secs, pa.int64(), mask=nat if nat.any() else None)
    if arr is not None and (arr.dtype.kind == "i" or (arr.dtype.kind == "u" and arr.dtype.itemsize < 8)):
        return pa.array(arr.astype("int64"), pa.int64())
    return _values(col, True, pandas)


def _values(col: Any, is_ts: bool, pandas: bool) -> Optional[list]:
    """A column's values as a list (times: datetimes as unix seconds)."""
    if col is None:
        return None
    if pandas:
        return _ts_column(col.to_numpy()) if is_ts else col.tolist()
    if is_ts:
        import pyarrow as pa

        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            return _ts_column(col.to_numpy(zero_copy_only=False))
    return col.to_pylist()


def _core_text_type() -> Any:
    import pyarrow as pa

    return pa.struct(
        [
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("text", pa.string()),
            ("posts", pa.int64()),
            ("sampled", pa.int64()),
        ]
    )


def clusters(
    index_path: Union[str, "os.PathLike[str]"],
    min_similarity: float = 0.5,
    min_edge_support: float = 0.0,
    attach_similarity: Optional[float] = None,
    min_size: int = 2,
    min_accounts: int = 1,
    platform: Union[None, str, Sequence[str]] = None,
    since: Any = None,
    until: Any = None,
    save: bool = False,
    as_arrow: bool = False,
    containment: Optional[float] = None,
    core_texts: bool = True,
) -> Tuple[Any, Any]:
    """Finds campaigns: groups of posts that reuse a text (``textreuse clusters``).

    Returns ``(posts, clusters)`` as pandas DataFrames (pyarrow Tables with
    ``as_arrow=True``):

    - ``posts``: one row per clustered post: ``cluster``, ``id``, ``account``,
      ``platform``, ``ts`` (UTC timestamp; unknown = NaT/null).
    - ``clusters``: one row per cluster, largest first: ``cluster``, ``size`` (posts),
      ``texts`` (distinct), ``accounts`` (distinct: who), ``platforms`` (dict platform ->
      posts: where), ``first_ts``/``last_ts`` (when), ``earliest_post``,
      ``representative_id``, ``representative`` (text), ``weakest_link``, ``edges``,
      ``attached`` (texts that joined by attachment), ``contained`` (of those, by
      containment) and ``core_text`` (the passage most of the cluster's posts share: a dict
      ``start``, ``end`` (chars of ``representative``), ``text``, ``posts``, ``sampled``;
      None when there is none), as ``textreuse clusters --json`` gives them.

    Args:
        index_path: the index directory.
        min_similarity: least similarity of a link between two texts.
        min_edge_support: chaining guard (0 = off; 0.7-0.8 splits bridged clusters).
        attach_similarity: lone texts join their most similar text's cluster from this
            similarity on (default 0.6 x min_similarity; 0 = off).
        min_size, min_accounts: least posts / distinct accounts of a reported cluster.
        platform, since, until: count only these posts.
        save: store the assignment in the index (hits then carry their cluster).
        as_arrow: return pyarrow Tables instead of pandas DataFrames.
        containment: a text still alone after attachment joins the cluster of a text it
            overlaps by at least this share (0 < C <= 1) of the smaller shingle set
            (``--containment``; None = off). Needs stored texts.
        core_texts: find each cluster's core text (False = ``--no-core-text``: faster).

    Raises:
        InvalidInput: an option out of range (``containment`` outside (0, 1]).
    """
    posts, clus = _native.clusters_columns(
        index_path,
        min_similarity=min_similarity,
        min_edge_support=min_edge_support,
        attach_similarity=attach_similarity,
        containment=containment,
        core_texts=core_texts,
        min_size=min_size,
        min_accounts=min_accounts,
        platform=platform,
        since=since,
        until=until,
        save=save,
    )
    import pyarrow as pa

    ts = pa.timestamp("s", tz="UTC")
    core_type = _core_text_type()
    p = pa.table(
        {
            "cluster": pa.array(posts["cluster"], pa.uint32()),
            "id": pa.array(posts["id"], pa.string()),
            "account": pa.array(posts["account"], pa.string()),
            "platform": pa.array(posts["platform"], pa.string()),
            "ts": pa.array(posts["ts"], pa.int64()).cast(ts),
        }
    )
    c = pa.table(
        {
            "cluster": pa.array(clus["cluster"], pa.uint32()),
            "size": pa.array(clus["size"], pa.int64()),
            "texts": pa.array(clus["texts"], pa.int64()),
            "accounts": pa.array(clus["accounts"], pa.int64()),
            "platforms": pa.array(
                [list(d.items()) for d in clus["platforms"]],
                pa.map_(pa.string(), pa.int64()),
            ),
            "first_ts": pa.array(clus["first_ts"], pa.int64()).cast(ts),
            "last_ts": pa.array(clus["last_ts"], pa.int64()).cast(ts),
            "earliest_post": pa.array(clus["earliest_post"], pa.string()),
            "representative_id": pa.array(clus["representative_id"], pa.string()),
            "representative": pa.array(clus["representative"], pa.string()),
            "weakest_link": pa.array(clus["weakest_link"], pa.float64()),
            "edges": pa.array(clus["edges"], pa.int64()),
            "attached": pa.array(clus["attached"], pa.int64()),
            "contained": pa.array(clus["contained"], pa.int64()),
            "core_text": pa.array(clus["core_text"], core_type),
        }
    )
    if as_arrow:
        return p, c
    pc = c.to_pandas()
    pc["platforms"] = [dict(x) if x is not None else {} for x in c.column("platforms").to_pylist()]
    pc["core_text"] = clus["core_text"]
    return p.to_pandas(), pc



