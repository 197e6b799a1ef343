"""What the distributed builds (:mod:`textreuse.spark`, :mod:`textreuse.ray`) share: the
parameter check, one task's staged build and its result row, the staging directory's
removal, and the driver's report of what was skipped."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import IndexBuilder, InvalidInput

log = logging.getLogger("textreuse")

PARAM_KEYS = ("shingle", "num_perm", "keep_hashtags", "t2s", "bands", "rows", "threshold", "seed")


def check_params(params: Dict[str, Any]) -> None:
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        raise InvalidInput(
            f"unknown fingerprint parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(PARAM_KEYS)}"
        )


def resolve_columns(
    names: List[str], what: str, id_col: str, text_col: str, optional: Dict[str, Any]
) -> Dict[str, Optional[str]]:
    """The columns of a ``what`` (``"DataFrame"``, ``"Dataset"``) with columns ``names`` to
    build from, as ``add_many`` arguments: id and text (required), then account/platform/ts
    (``optional``: field -> (name given, default name)), each used when present under its
    default name and an error when a name given is missing; None leaves one out."""
    for need in (id_col, text_col):
        if need not in names:
            raise InvalidInput(
                f"the {what} has no column {need!r} (columns: {', '.join(names)}); "
                f"name it with id_col=/text_col="
            )
    out: Dict[str, Optional[str]] = {"id_col": id_col, "text_col": text_col}
    for field, (name, default) in optional.items():
        if name is not None and name not in names:
            if name != default:
                raise InvalidInput(
                    f"the {what} has no column {name!r} for {field} "
                    f"(columns: {', '.join(names)}); pass {field}_col=None to go without"
                )
            name = None
        out[f"{field}_col"] = name
    return out


def result_schema(pa: Any, first: List[Any]) -> Any:
    """The pyarrow schema of a task's result row: ``first`` (the fields that name the task),
    then the fields :func:`stage` returns."""
    return pa.schema(
        list(first)
        + [
            ("staged", pa.string()),
            ("posts", pa.int64()),
            ("indexed", pa.int64()),
            ("empty", pa.int64()),
            ("duplicate_ids", pa.int64()),
            ("skipped_rows", pa.list_(pa.int64())),
            ("skipped_ids", pa.list_(pa.string())),
            ("skipped_reasons", pa.list_(pa.string())),
        ]
    )


def stage(
    d: str,
    tables: Iterable[Any],
    columns: Dict[str, Any],
    memory: str,
    shares: int,
    store_text: bool,
    threads: int,
    params: Dict[str, Any],
    on_staged: Optional[Callable[[str], None]] = None,
) -> Dict[str, List[Any]]:
    """One task: builds ``tables`` (Arrow batches) into the staged build ``d`` and returns
    its result row as one-element columns. On any error the build is aborted and ``d``
    removed before the error goes on."""
    shutil.rmtree(d, ignore_errors=True)
    b = IndexBuilder(
        d,
        memory=memory,
        segment_only=True,
        share_of=shares,
        store_text=store_text,
        threads=threads,
        **params,
    )
    try:
        for t in tables:
            b.add_many(t, **columns)
        skipped = b.skipped
        stats = b.finish()
    except BaseException:
        b.abort()
        shutil.rmtree(d, ignore_errors=True)
        raise
    if on_staged is not None:
        on_staged(d)
    return {
        "staged": [d],
        "posts": [stats["posts"]],
        "indexed": [stats["indexed"]],
        "empty": [stats["empty"]],
        "duplicate_ids": [stats["duplicate_ids"]],
        "skipped_rows": [[s["row"] for s in skipped]],
        "skipped_ids": [[s["id"] for s in skipped]],
        "skipped_reasons": [[s["reason"] for s in skipped]],
    }


def remove_staging(staging: str, chosen: bool) -> None:
    """Removes the staging directory (failed and retried tasks' directories, and the
    committed ones once published or on error), and its parent ``<path>.staging`` when it
    was the default one (``chosen`` False) and is left empty."""
    shutil.rmtree(staging, ignore_errors=True)
    parent = os.path.dirname(staging)
    if not chosen and os.path.isdir(parent) and not os.listdir(parent):
        os.rmdir(parent)


def skipped_of(
    rows: List[Any], unit: str, names: List[int], report: Dict[str, Any]
) -> List[Dict[str, Any]]:
    """The posts the tasks ``rows`` skipped, each with its ``unit`` (``"partition"``,
    ``"block"``) named by ``names``, logged as ``textreuse build`` reports them: every
    repeated id, the first ten empty texts; then the ids that publishing dropped."""
    skipped = []
    empty_shown = 0
    for at, r in zip(names, rows):
        for row, id_, why in zip(r["skipped_rows"], r["skipped_ids"], r["skipped_reasons"]):
            skipped.append({unit: at, "row": row, "id": id_, "reason": why})
            empty = why.startswith("no text")
            if not empty or empty_shown < 10:
                log.warning("textreuse: skipped %s %d, row %d: id %r: %s", unit, at, row, id_, why)
            empty_shown += empty
    for d in report["duplicate_ids"]:
        log.warning(
            "textreuse: skipped %s: duplicate id %r: an earlier post has it (in %s)",
            d["staged"], d["id"], d["first"],
        )
    return skipped
