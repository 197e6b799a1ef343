"""Distributed index builds on Ray Data.

:func:`build_index` has every block of a Ray Dataset write one staged build (a segment, or
a few when the block outgrows ``memory``) into a staging directory on storage that every
worker shares, then publishes them from the driver as **one** generation of the index
(:func:`textreuse.publish`, ``textreuse publish``), as :mod:`textreuse.spark` does:

- each task stages into a directory of its own (``block-<random>``) and the driver
  publishes only the directories that the blocks' successful tasks returned, so a task
  that Ray retries (a worker lost after staging) never adds its segment twice;
- every staged build must have the same fingerprint parameters (checked at publishing);
- blocks are published in the Dataset's order, and a post whose id an earlier block
  already had is dropped and reported, as ``textreuse build`` reports a repeated id;
- if the job fails, nothing is published and the staging directory is removed.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Dict, Optional

from . import Error, Fingerprinter, InvalidInput, _staging, publish

__all__ = ["build_index"]


def build_index(
    ds: Any,
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
    threads: int = 1,
    blocks: Optional[int] = None,
    share_of: Optional[int] = None,
    _on_staged: Any = None,
    **params: Any,
) -> Dict[str, Any]:
    """Builds an index at ``path`` from a Ray Dataset, one staged build per block,
    published as one generation. ``path`` (and ``staging_dir``) must be on storage that
    the driver and every worker share.

    Args:
        ds: the posts (``ray.data.read_parquet(...)``, ``from_pandas``, ...).
        path: the index directory.
        id_col, text_col: required columns (integer ids become decimal strings).
        account_col, platform_col, ts_col: optional columns (used when present under the
            default name; None leaves one out). ``ts``: unix seconds, datetimes or RFC 3339
            strings; NaN raises.
        memory: memory budget of each task's builder (a block larger than this becomes
            several segments).
        mode: ``"create"``, ``"replace"`` or ``"append"`` (as ``publish --append``).
        staging_dir: where tasks stage (default ``<path>.staging/<job>``; keep it on the
            index's file system so publishing hard-links instead of copying).
        store_text: store texts so hits carry them.
        threads: worker threads of each task, and the CPUs Ray reserves for it.
        blocks: repartition the Dataset into this many blocks first (one segment each);
            default: the Dataset's own blocks.
        share_of: how many blocks the job has, so that each block's text dictionaries
            train on its share of one build's sample (default: ``blocks``, or the count of
            a materialized Dataset; a lazy Dataset does not know it, and then each block
            trains on a whole build's sample, which costs time, not answers).
        **params: fingerprint parameters (shingle, num_perm, keep_hashtags, t2s, bands, rows,
            threshold, seed), the same for every task.

    Returns:
        A dict: the publish report (generation, segments, posts, live_posts,
        duplicate_ids, bytes) plus ``blocks`` (per block, in order: posts, indexed, empty,
        duplicate ids within it) and ``skipped`` (posts not indexed inside a block: block,
        row, id, reason).

    Raises:
        InvalidInput: a missing column or a bad parameter (before the job starts).
        Error: the job failed (nothing is published), or publishing failed.
    """
    import ray.data

    _staging.check_params(params)
    if threads < 1:
        raise InvalidInput(f"threads must be at least 1, not {threads}")
    if blocks is not None and blocks < 1:
        raise InvalidInput(f"blocks must be at least 1, not {blocks}")
    if share_of is not None and share_of < 1:
        raise InvalidInput(f"share_of must be at least 1, not {share_of}")
    if mode not in ("create", "replace", "append"):
        raise InvalidInput(f'mode must be "create", "replace" or "append", not {mode!r}')
    Fingerprinter(**params)
    schema = ds.schema()  # (starts Ray if the caller has not)
    if schema is None:
        raise InvalidInput("the Dataset has no schema (is it empty?)")
    # Each task reserves `threads` CPUs: more than the cluster has would wait forever.
    if ray.is_initialized():
        cpus = ray.cluster_resources().get("CPU", 0)
        if threads > cpus:
            raise InvalidInput(
                f"threads={threads} but the Ray cluster has {cpus:g} CPUs; each task reserves "
                f"threads CPUs, so no task could run"
            )
    cols = _staging.resolve_columns(
        list(schema.names),
        "Dataset",
        id_col,
        text_col,
        {
            "account": (account_col, "account"),
            "platform": (platform_col, "platform"),
            "ts": (ts_col, "ts"),
        },
    )
    if blocks is not None:
        ds = ds.repartition(blocks)
    # Each block's segments train their text dictionaries on a share of one build's
    # sample (as Spark partitions do); the count is only a size hint. Only a materialized
    # Dataset knows its blocks (`num_blocks` raises on a lazy one).
    shares = share_of or blocks
    if shares is None:
        try:
            shares = int(ds.num_blocks())
        except NotImplementedError:
            shares = 1
    path = os.path.abspath(path)
    staging = os.path.abspath(staging_dir or os.path.join(path + ".staging", uuid.uuid4().hex))
    os.makedirs(staging, exist_ok=True)

    def stage(table: Any) -> Any:
        import pyarrow as pa

        schema = _staging.result_schema(pa, [])
        if table.num_rows == 0:
            return schema.empty_table()
        d = os.path.join(staging, f"block-{uuid.uuid4().hex}")
        row = _staging.stage(d, [table], cols, memory, shares, store_text, threads, params, _on_staged)
        return pa.Table.from_pydict(row, schema=schema)

    def cleanup() -> None:
        _staging.remove_staging(staging, staging_dir is not None)

    # Blocks come back in the Dataset's order, so repeated ids resolve as in a CLI build
    # of the rows in order. A Dataset runs with a copy of the context current when it was
    # made, so the order is asked of the staging Dataset's own context (the caller's
    # Dataset keeps its own); the current context too, for Ray versions without a
    # per-Dataset one (restored after the job). Setting only the current context let
    # blocks come back in the order they finished: a loaded machine published the second
    # block's post under a repeated id.
    ctx = ray.data.DataContext.get_current()
    kept_order = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        staged = ds.map_batches(stage, batch_format="pyarrow", batch_size=None, num_cpus=threads)
        own = getattr(staged, "context", None)
        if own is not None and own is not ctx:
            own.execution_options.preserve_order = True
        rows = staged.take_all()
    except Exception as e:
        cleanup()
        raise Error(f"the Ray job failed; nothing was published: {e}") from e
    finally:
        ctx.execution_options.preserve_order = kept_order
    try:
        if not rows:
            raise Error("the Dataset has no rows; nothing was published")
        report = publish(path, [r["staged"] for r in rows], mode=mode)
    finally:
        cleanup()
    skipped = _staging.skipped_of(rows, "block", list(range(len(rows))), report)
    report["blocks"] = [
        {"block": i, **{k: r[k] for k in ("posts", "indexed", "empty", "duplicate_ids")}}
        for i, r in enumerate(rows)
    ]
    report["skipped"] = skipped
    return report
