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

        def get(name: Optional[str], start: int, stop: int) -> Optional[list]:
            if not name or name not in names:
                return None
            if pandas:
                col = data[name].iloc[start:stop]
                if name == ts_col:
                    return _ts_column(col.to_numpy())
                return col.tolist()
            col = data.column(name).slice(start, stop - start)
            if name == ts_col:
                import pyarrow as pa

                if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
                    return _ts_column(col.to_numpy(zero_copy_only=False))
            return col.to_pylist()

        n = len(data) if pandas else data.num_rows
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            self.add_columns(
                get(id_col, start, stop),
                get(text_col, start, stop),
                get(account_col, start, stop),
                get(platform_col, start, stop),
                get(ts_col, start, stop),
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
      ``attached``.

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
    """
    posts, clus = _native.clusters_columns(
        index_path,
        min_similarity=min_similarity,
        min_edge_support=min_edge_support,
        attach_similarity=attach_similarity,
        min_size=min_size,
        min_accounts=min_accounts,
        platform=platform,
        since=since,
        until=until,
        save=save,
    )
    import pyarrow as pa

    ts = pa.timestamp("s", tz="UTC")
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
        }
    )
    if as_arrow:
        return p, c
    pc = c.to_pandas()
    pc["platforms"] = [dict(x) if x is not None else {} for x in c.column("platforms").to_pylist()]
    return p.to_pandas(), pc



