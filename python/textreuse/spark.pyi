"""Type stubs of textreuse.spark."""

from typing import Any, Dict, Optional

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
    **params: Any,
) -> Dict[str, Any]:
    """Builds an index from a Spark DataFrame: one staged build per partition, published
    as one generation; each task runs on ``threads`` threads (default ``spark.task.cpus``)."""

def fingerprint(df: Any, text_col: str = "text", prefix: str = "", **params: Any) -> Any:
    """Adds content_hash, signature and band_keys columns (mapInArrow)."""
