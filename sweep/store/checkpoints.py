"""Size and sha256 of a checkpoint (one file or a Hugging Face checkpoint directory)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sweep.errors import StoreError

__all__ = ["checkpoint_fingerprint"]

_CHUNK = 1 << 20


def checkpoint_fingerprint(path: str | Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, or of a directory: the hash runs over its files
    in sorted relative-path order, each as its path, a NUL byte, then its contents, so a
    renamed or moved file changes the hash. A single file hashes like `sha256sum`."""
    root = Path(path)
    if root.is_file():
        digest = hashlib.sha256()
        return _feed(root, digest), digest.hexdigest()
    if not root.is_dir():
        raise StoreError(f"the checkpoint {root} does not exist; check the trial's checkpoint path")
    digest = hashlib.sha256()
    size = 0
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        size += _feed(file, digest)
    return size, digest.hexdigest()


def _feed(file: Path, digest: hashlib._Hash) -> int:
    size = 0
    with file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size
