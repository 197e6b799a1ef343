"""Type stubs of textreuse.ray."""

from typing import Any, Dict, Optional

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
    **params: Any,
) -> Dict[str, Any]:
    """Builds an index from a Ray Dataset: one staged build per block (``blocks=`` to
    repartition first), published as one generation in the Dataset's order."""
