"""Distributed index builds and fingerprints on Apache Spark (PySpark).

:func:`build_index` has every partition of a DataFrame write one staged build (a segment,
or a few when the partition outgrows ``memory``) into a staging directory on storage that
every executor shares, then publishes the committed ones from the driver as **one**
generation of the index (:func:`textreuse.publish`, ``textreuse publish``):

- each task stages into ``part-<partition>-attempt-<attempt>``, and the driver publishes
  only the directory each partition's successful attempt reported, so a retried or
  speculative task never adds its segment twice;
- every staged build must have the same fingerprint parameters (checked at publishing);
- a post whose id an earlier partition (in partition order) already had is dropped and
  reported, as ``textreuse build`` reports a repeated id;
- if the job fails, nothing is published and the staging directory is removed.

:func:`fingerprint` adds ``content_hash``, ``signature`` and ``band_keys`` columns to a
DataFrame with Arrow batches (``mapInArrow``), for users who run their own joins.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Dict, Iterator, List, Optional

from . import Error, Fingerprinter, InvalidInput, _staging, publish

__all__ = ["build_index", "fingerprint"]


def _columns(df: Any, id_col: str, text_col: str, optional: Dict[str, Any]) -> List[Any]:
    """The select list: id and text (required), then account/platform/ts when present,
    renamed to the library's field names."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    found = _staging.resolve_columns(list(df.columns), "DataFrame", id_col, text_col, optional)
    cols = [F.col(id_col).cast("string").alias("id"), F.col(text_col).alias("text")]
    dtypes = dict(df.dtypes)
    for field in optional:
        name = found[f"{field}_col"]
        if name is None:
            continue
        c = F.col(name)
        if field == "ts" and dtypes[name] in ("timestamp", "timestamp_ntz", "date"):
            c = F.unix_timestamp(c).cast(T.LongType())
        cols.append(c.alias(field))
    return cols


def build_index(
    df: Any,
    path: str,
    id_col: str = "id",
    text_col: str = "text",
    account_col: Optional[str] = "account",
    platform_col: Optional[str] = "platform",
    ts_col: Optional[str] = "ts",
    memory: str = "1G",
    mode: str = "create",
    staging_dir: Optional[str] = None,
    store_text: bool = True,
    threads: Optional[int] = None,
    _on_staged: Any = None,
    **params: Any,
) -> Dict[str, Any]:
    """Builds an index at ``path`` from a Spark DataFrame, one staged build per partition,
    published as one generation. ``path`` (and ``staging_dir``) must be on storage that
    the driver and every executor share (a shared file system mount).

    Args:
        df: the posts.
        path: the index directory.
        id_col, text_col: required columns (ids are cast to strings).
        account_col, platform_col, ts_col: optional columns (used when present under the
            default name; None leaves one out). ``ts``: unix seconds, timestamps or RFC 3339
            strings; NaN raises.
        memory: memory budget of each task's builder (a partition larger than this becomes
            several segments).
        mode: ``"create"``, ``"replace"`` or ``"append"`` (as ``publish --append``: the
            index's live ids come first).
        staging_dir: where tasks stage (default ``<path>.staging/<job>``; keep it on the
            index's file system so publishing hard-links instead of copying).
        store_text: store texts so hits carry them.
        threads: worker threads of each task (default ``spark.task.cpus``, as Spark
            schedules tasks: a task that took every core of its machine would compete with
            the other tasks running there).
        **params: fingerprint parameters (shingle, num_perm, keep_hashtags, t2s, bands, rows,
            threshold, seed), the same for every task.

    Returns:
        A dict: the publish report (generation, segments, posts, live_posts,
        duplicate_ids, bytes) plus ``partitions`` (per partition: posts, indexed, empty,
        duplicate ids within it) and ``skipped`` (posts not indexed inside a partition:
        partition, row, id, reason).

    Raises:
        InvalidInput: a missing column or a bad parameter (before the job starts).
        Error: the job failed (nothing is published), or publishing failed.
    """
    _staging.check_params(params)
    if threads is not None and threads < 1:
        raise InvalidInput(f"threads must be at least 1, not {threads}")
    if mode not in ("create", "replace", "append"):
        raise InvalidInput(f'mode must be "create", "replace" or "append", not {mode!r}')
    # Fail on bad parameters on the driver, before any task runs.
    Fingerprinter(**params)
    cols = _columns(
        df,
        id_col,
        text_col,
        {
            "account": (account_col, "account"),
            "platform": (platform_col, "platform"),
            "ts": (ts_col, "ts"),
        },
    )
    selected = df.select(*cols)
    # Each partition's segments train their text dictionaries on a share of one build's
    # sample, so the job trains about as much as `textreuse build` does once.
    shares = max(1, selected.rdd.getNumPartitions())
    if threads is None:
        threads = int(selected.sparkSession.sparkContext.getConf().get("spark.task.cpus", "1"))
    path = os.path.abspath(path)
    staging = os.path.abspath(staging_dir or os.path.join(path + ".staging", uuid.uuid4().hex))
    os.makedirs(staging, exist_ok=True)

    def stage(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        ctx = TaskContext.get()
        pid, attempt = ctx.partitionId(), ctx.attemptNumber()
        d = os.path.join(staging, f"part-{pid:05d}-attempt-{attempt}")
        on_staged = None if _on_staged is None else (lambda d: _on_staged(pid, attempt, d))
        row = _staging.stage(d, batches, {}, memory, shares, store_text, threads, params, on_staged)
        yield pa.RecordBatch.from_pydict(
            {"partition": [pid], "attempt": [attempt], **row},
            schema=_staging.result_schema(pa, [("partition", pa.int32()), ("attempt", pa.int32())]),
        )

    schema = (
        "partition int, attempt int, staged string, posts long, indexed long, empty long, "
        "duplicate_ids long, skipped_rows array<long>, skipped_ids array<string>, "
        "skipped_reasons array<string>"
    )

    def cleanup() -> None:
        _staging.remove_staging(staging, staging_dir is not None)

    try:
        rows = selected.mapInArrow(stage, schema).collect()
    except Exception as e:
        cleanup()
        raise Error(f"the Spark job failed; nothing was published: {e}") from e
    rows = sorted(rows, key=lambda r: r["partition"])
    try:
        report = publish(path, [r["staged"] for r in rows], mode=mode)
    finally:
        cleanup()
    skipped = _staging.skipped_of(rows, "partition", [r["partition"] for r in rows], report)
    report["partitions"] = [
        {k: r[k] for k in ("partition", "attempt", "posts", "indexed", "empty", "duplicate_ids")}
        for r in rows
    ]
    report["skipped"] = skipped
    return report


def fingerprint(df: Any, text_col: str = "text", prefix: str = "", **params: Any) -> Any:
    """Adds fingerprint columns to a Spark DataFrame, computed on Arrow batches
    (``mapInArrow``) by the Rust library:

    - ``content_hash`` (string, 32 hex digits: equal for texts that normalize alike),
    - ``signature`` (binary: ``num_perm`` little-endian uint32 MinHash minima),
    - ``band_keys`` (array<bigint>: the LSH band keys, uint64 read as signed).

    A null text, or one with no token left after normalization, gets nulls.
    ``prefix`` is put before each new column's name; ``**params`` are fingerprint
    parameters as for :class:`textreuse.Fingerprinter`.
    """
    _staging.check_params(params)
    Fingerprinter(**params)
    if text_col not in df.columns:
        raise InvalidInput(
            f"the DataFrame has no column {text_col!r} (columns: {', '.join(df.columns)})"
        )
    from pyspark.sql import types as T

    names = [prefix + n for n in ("content_hash", "signature", "band_keys")]
    for n in names:
        if n in df.columns:
            raise InvalidInput(f"the DataFrame already has a column {n!r}; choose a prefix=")
    schema = T.StructType(
        list(df.schema.fields)
        + [
            T.StructField(names[0], T.StringType()),
            T.StructField(names[1], T.BinaryType()),
            T.StructField(names[2], T.ArrayType(T.LongType(), containsNull=False)),
        ]
    )

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import numpy as np
        import pyarrow as pa

        fp = Fingerprinter(**params)
        for batch in batches:
            texts = batch.column(batch.schema.get_field_index(text_col))
            if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
                texts = texts.cast(pa.string())
            # Read in place by the library; a null text counts as empty (null outputs).
            out = fp.fingerprint_many(texts, null_as_empty=True)
            n = len(texts)
            empty = out["empty"]
            valid = pa.array(~empty).buffers()[1] if n else None
            sig = np.ascontiguousarray(out["signature"])
            k4 = sig.shape[1] * 4 if n else 0
            offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * k4).tobytes())
            offsets32 = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * 32).tobytes())
            signature = pa.Array.from_buffers(
                pa.binary(), n, [valid, offsets, pa.py_buffer(sig.tobytes())], null_count=int(empty.sum())
            )
            keys = np.ascontiguousarray(out["band_keys"]).view(np.int64)
            nb = keys.shape[1] if n else 0
            band_keys = pa.ListArray.from_arrays(
                pa.array(np.arange(n + 1, dtype=np.int32) * nb),
                pa.array(keys.ravel()),
                mask=pa.array(empty),
            )
            hashes = pa.Array.from_buffers(
                pa.string(),
                n,
                [valid, offsets32, pa.py_buffer(out["content_hash"].astype("S32").tobytes())],
                null_count=int(empty.sum()),
            )
            yield pa.RecordBatch.from_arrays(
                list(batch.columns) + [hashes, signature, band_keys],
                names=list(batch.schema.names) + names,
            )

    return df.mapInArrow(run, schema)
