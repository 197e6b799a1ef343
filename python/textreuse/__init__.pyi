"""Type stubs of the textreuse package (the native classes live in textreuse._native)."""

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_Time = Union[None, int, float, str, Any]  # unix seconds, RFC 3339, datetime/Timestamp
_Names = Union[None, str, Sequence[str]]

class Error(Exception):
    """Base class of every error textreuse raises."""

class InvalidInput(Error):
    """A post, argument or parameter is invalid (None/bytes/non-UTF-8 text, NaN time,
    missing column, out-of-range parameter)."""

class IndexLocked(Error):
    """Another writer holds the index's lock."""

class IndexNotFound(Error):
    """The directory holds no index."""

class IndexExists(Error):
    """The directory already holds an index."""

class CorruptIndex(Error):
    """An index file is damaged."""

class UnsupportedVersion(Error):
    """An index file was written by a format version this build cannot read."""

class IoError(Error):
    """An operating-system error on an index or input file."""

class FingerprintDict(TypedDict):
    content_hash: str
    signature: Union[bytes, npt.NDArray[np.uint32]]
    band_keys: List[int]
    shingles: int

class FingerprintBatch(TypedDict):
    content_hash: npt.NDArray[np.str_]
    signature: npt.NDArray[np.uint32]
    band_keys: npt.NDArray[np.uint64]
    empty: npt.NDArray[np.bool_]

class Fingerprinter:
    """What the engine sees of a text: normalization, tokens, content hash, MinHash
    signature and LSH band keys."""

    def __init__(
        self,
        shingle: int = 3,
        num_perm: int = 128,
        keep_hashtags: bool = False,
        t2s: bool = True,
        bands: Optional[int] = None,
        rows: Optional[int] = None,
        threshold: Optional[float] = None,
        seed: Optional[int] = None,
    ) -> None: ...
    @property
    def params(self) -> Dict[str, Any]:
        """The parameters, as stored in an index's manifest."""
    def normalize(self, text: str) -> str:
        """The normalized text (tokens joined by single spaces)."""
    def tokens(self, text: str) -> List[str]:
        """The tokens of the normalized text."""
    def fingerprint(self, text: str, numpy: bool = False) -> Optional[FingerprintDict]:
        """Content hash, signature (bytes or numpy uint32), band keys and shingle count;
        None when no token is left."""
    def fingerprint_many(self, texts: Union[Sequence[str], Any], null_as_empty: bool = False) -> FingerprintBatch:
        """Fingerprints many texts (a list of str, or a pyarrow string array read in
        place) in parallel with the GIL released."""

class Hit(TypedDict, total=False):
    id: str
    similarity: float
    account: str
    platform: str
    ts: Optional[int]
    text: str
    cluster: int
    expanded: bool

class Post(TypedDict):
    id: str
    account: str
    platform: str
    ts: Optional[int]
    text: Optional[str]

class Index:
    """An open, memory-mapped index; share one object between threads."""

    def __init__(self, path: _Path, in_memory: bool = False, prefetch: bool = False) -> None: ...
    @staticmethod
    def open(path: _Path, in_memory: bool = False, prefetch: bool = False) -> "Index":
        """Opens the index in directory ``path``: memory-mapped, or with ``in_memory`` read
        into memory (huge pages on Linux; open reads every file but the stored texts).
        ``prefetch`` asks the kernel to read in each lookup's pages together before probing
        (for an index mostly not in the page cache)."""
    @property
    def path(self) -> str:
        """The index directory."""
    @property
    def generation(self) -> int:
        """The manifest generation answered from."""
    @property
    def fingerprinter(self) -> Fingerprinter:
        """The fingerprinter of the index's parameters."""
    def __len__(self) -> int: ...
    def query(
        self,
        text: str,
        limit: int = 10,
        min_similarity: float = 0.5,
        platform: _Names = None,
        account: _Names = None,
        since: _Time = None,
        until: _Time = None,
        exact: bool = True,
        with_text: bool = True,
        expand: bool = False,
    ) -> List[Hit]:
        """Hits for one text, best first (the fields of ``query --json``)."""
    def query_many(
        self,
        texts: Sequence[str],
        limit: int = 10,
        min_similarity: float = 0.5,
        platform: _Names = None,
        account: _Names = None,
        since: _Time = None,
        until: _Time = None,
        exact: bool = True,
        with_text: bool = True,
        expand: bool = False,
    ) -> List[List[Hit]]:
        """Hits for many texts, in parallel with the GIL released, in input order."""
    def query_arrow(
        self,
        texts: Union[Sequence[str], Any],
        limit: int = 10,
        min_similarity: float = 0.5,
        platform: _Names = None,
        account: _Names = None,
        since: _Time = None,
        until: _Time = None,
        exact: bool = True,
        with_text: bool = True,
        expand: bool = False,
    ) -> Any:
        """Hits for many texts as one ``pyarrow.Table``, one row per hit: ``query`` (the
        text's position in ``texts``), ``id``, ``similarity``, ``account``, ``platform``,
        ``ts``, ``text`` (when ``with_text``), ``cluster``, ``expanded``; input order, each
        text's hits best first. No Python object per hit: the fast way to many hits.
        ``texts`` may be a pyarrow string array or a Table's column (read in place)."""
    def post(self, id: Union[str, int]) -> Optional[Post]:
        """The live post with this id, or None."""
    def stats(self) -> Dict[str, Any]:
        """Counts, parameters and sizes (``textreuse stats --json``)."""
    def reload(self) -> bool:
        """Switches to the newest generation; returns whether there was one."""
    def verify(self) -> None:
        """Checks every checksum; raises CorruptIndex on damage."""

class BuildStats(TypedDict):
    posts: int
    indexed: int
    unique_texts: int
    empty: int
    duplicate_ids: int
    replaced: int
    deleted: int
    segments: int
    bytes: int

class Skipped(TypedDict):
    row: int
    id: str
    reason: str

class IndexBuilder:
    """Builds an index (or adds to one) with bounded memory; publishes it atomically."""

    def __init__(
        self,
        path: _Path,
        memory: Union[None, str, int] = None,
        mode: str = "create",
        on_existing_id: str = "skip",
        store_text: bool = True,
        segment_only: bool = False,
        share_of: Optional[int] = None,
        threads: Optional[int] = None,
        shingle: int = 3,
        num_perm: int = 128,
        keep_hashtags: bool = False,
        t2s: bool = True,
        bands: Optional[int] = None,
        rows: Optional[int] = None,
        threshold: Optional[float] = None,
        seed: Optional[int] = None,
    ) -> None: ...
    def __enter__(self) -> "IndexBuilder": ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...
    @property
    def path(self) -> str:
        """The index directory."""
    def add(
        self,
        id: Union[str, int],
        text: str,
        account: Optional[str] = None,
        platform: Optional[str] = None,
        ts: _Time = None,
    ) -> None:
        """Adds one post."""
    def add_columns(
        self,
        ids: Sequence[Union[str, int]],
        texts: Sequence[str],
        accounts: Optional[Sequence[Optional[str]]] = None,
        platforms: Optional[Sequence[Optional[str]]] = None,
        ts: Optional[Sequence[_Time]] = None,
    ) -> None:
        """Adds posts from equal-length columns."""
    def add_arrow(
        self,
        ids: Any,
        texts: Any,
        accounts: Any = None,
        platforms: Any = None,
        ts: Any = None,
    ) -> None:
        """Adds posts from pyarrow string arrays (read in place; ``ts``: an int64 array or a
        sequence of times); a null id or text or bad UTF-8 raises naming its row."""
    def add_many(
        self,
        data: Any,
        id_col: str = "id",
        text_col: str = "text",
        account_col: Optional[str] = "account",
        platform_col: Optional[str] = "platform",
        ts_col: Optional[str] = "ts",
    ) -> None:
        """Adds a pandas DataFrame, a pyarrow Table/RecordBatch, or an iterable of dicts
        or tuples."""
    def delete(self, ids: Iterable[Union[str, int]]) -> List[str]:
        """Marks live posts deleted (when appending); returns the ids not found."""
    @property
    def stats(self) -> BuildStats:
        """Counts so far."""
    @property
    def skipped(self) -> List[Skipped]:
        """Posts not indexed so far (repeated ids, empty texts), up to 1,000."""
    def finish(self) -> BuildStats:
        """Publishes the index; the builder cannot be used afterwards."""
    def abort(self) -> None:
        """Abandons the build: nothing is published."""

def merge(
    path: _Path, max_segments: int = 1, memory: Union[None, str, int] = None, within_budget: bool = False
) -> Dict[str, Any]:
    """Merges adjacent segments until at most ``max_segments`` remain (``textreuse merge``).

    With ``within_budget=True``, a merge that needs more than ``memory`` merges what it
    allows (adjacent segments in groups whose merges each fit) instead of raising."""

def publish(path: _Path, staged: Sequence[_Path], mode: str = "create", keep_staged: bool = False) -> Dict[str, Any]:
    """Publishes staged builds as one generation (``textreuse publish``)."""

def clusters(
    index_path: _Path,
    min_similarity: float = 0.5,
    min_edge_support: float = 0.0,
    attach_similarity: Optional[float] = None,
    min_size: int = 2,
    min_accounts: int = 1,
    platform: _Names = None,
    since: _Time = None,
    until: _Time = None,
    save: bool = False,
    as_arrow: bool = False,
    containment: Optional[float] = None,
    core_texts: bool = True,
) -> Tuple[Any, Any]:
    """Campaigns as ``(posts, clusters)`` pandas DataFrames (or pyarrow Tables); the
    clusters carry ``contained`` and ``core_text`` as ``textreuse clusters --json``."""
