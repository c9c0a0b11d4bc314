"""Corpus -> byte-level BPE tokenizer -> cached token streams -> training windows.

A BabyLM-layout corpus dir holds train/, dev/ and test/, each with `<source>.<split>` text
files; every non-empty line is one document. The tokenizer is trained on the train split
only and saved in Hugging Face format; each split is tokenized once into a .npy token
stream (read back as a memmap) that later runs and parallel trials share. Both live under
`data.cache_dir`, keyed by content hashes, and are built to a temp path, then renamed into
place under a file lock, so two processes building at once never see a half-written file.

Each document is encoded as `<s> tokens...` (no newline): `<s>` separates documents in the
stream and is the prefix BLiMP scoring conditions on, so the model has learnt its meaning.

`data.pipeline: babyllama2` is the reference's (JLTastet/BabyLlama-2, `babylm_dataset.py` and
the cleaning notebook) instead: every split is cleaned per source (`trainers.cleaning`; the
cleaned copies live in the cache), the tokenizer learns only the bytes the cleaned train
files hold, each file is encoded whole (newlines are tokens, no `<s>` anywhere) and
`RandomChunkWindows` cuts the training windows.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from trainers.cleaning import (
    CLEANING_VERSION,
    clean_text,
    is_cleaned_corpus,
    uncleaned_sources,
)
from trainers.config import DataConfig
from trainers.errors import TrainerError

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "SPLITS",
    "PreparedCorpus",
    "RandomChunkWindows",
    "TrainWindows",
    "corpus_files",
    "eval_windows",
    "load_tokenizer",
    "prepare_corpus",
    "split_tokens",
    "tokenizer_fingerprint",
    "train_windows",
]

log = logging.getLogger(__name__)

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<s>", "</s>"
SPLITS = ("train", "dev", "test")
_CACHE_FORMAT = 1  # bump when the tokenizer recipe or stream layout changes
_ENCODE_CHUNK_LINES = 50_000
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedCorpus:
    """The tokenizer and token streams of one corpus, ready in the cache."""

    tokenizer_dir: Path
    """HF tokenizer folder (tokenizer.json, tokenizer_config.json)."""
    token_files: dict[str, Path]
    """Split name -> .npy token stream (documents as `<s> tokens...`, concatenated)."""
    built: tuple[str, ...]
    """What this call had to build ("tokenizer", "train", ...); empty when all was cached."""
    repaired: tuple[str, ...] = ()
    """One line per damaged cache entry this call found and rebuilt (for the console)."""


def corpus_files(data: DataConfig, split: str) -> list[Path]:
    """The `<source>.<split>` files of one split, sorted; TrainerError if none hold text."""
    split_dir = Path(data.corpus) / split
    if not split_dir.is_dir():
        raise TrainerError(
            f"data.corpus: {split_dir} does not exist; a BabyLM-layout corpus needs "
            f"train/, dev/ and test/ folders of <source>.<split> text files"
        )
    files = sorted(p for p in split_dir.glob(f"*.{split}") if p.is_file())
    if not files or all(p.stat().st_size == 0 for p in files):
        raise TrainerError(
            f"data.corpus: {split_dir} holds no non-empty *.{split} files; "
            f"add the {split} split's text files or point data.corpus elsewhere"
        )
    return files


def prepare_corpus(data: DataConfig, *, splits: tuple[str, ...] = SPLITS) -> PreparedCorpus:
    """Build (or find in the cache) the tokenizer and the token stream of each split.

    The sweep calls this once on the driver, so parallel trials only read the cache.
    """
    data = data.resolved()
    built: list[str] = []
    repaired: list[str] = []
    tokenizer_dir = _cached_tokenizer_dir(data, built, repaired)
    backend = _backend_tokenizer(tokenizer_dir)
    token_files = {
        split: _cached_token_file(data, split, backend, built, repaired) for split in splits
    }
    return PreparedCorpus(tokenizer_dir, token_files, tuple(built), tuple(repaired))


def load_tokenizer(tokenizer_dir: Path) -> PreTrainedTokenizerBase:
    """The HF tokenizer saved in a tokenizer or model folder."""
    from transformers import AutoTokenizer

    if not (Path(tokenizer_dir) / "tokenizer.json").is_file():
        raise TrainerError(
            f"{tokenizer_dir}: no tokenizer.json; pass a checkpoint written by trainers"
        )
    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """A hash of what decides the token ids (model, normalizer, pre-tokenizer, specials)."""
    spec = json.loads(tokenizer.to_str())
    keep = {k: spec.get(k) for k in ("model", "normalizer", "pre_tokenizer", "added_tokens")}
    return _sha(json.dumps(keep, sort_keys=True).encode())[:16]


def split_tokens(data: DataConfig, split: str, tokenizer_dir: Path | None = None) -> np.ndarray:
    """The token stream of one split (a read-only memmap), capped by the config.

    The train split is capped by `max_train_tokens`, dev/test by `max_eval_tokens`; a cap
    takes the first tokens of every source in proportion to its size, so a slice keeps
    the corpus's mix of sources.
    """
    data = data.resolved()
    built: list[str] = []
    repaired: list[str] = []
    if tokenizer_dir is None:
        tokenizer_dir = _cached_tokenizer_dir(data, built, repaired)
    backend = _backend_tokenizer(tokenizer_dir)
    path = _cached_token_file(data, split, backend, built, repaired)
    for line in repaired:  # a trial found it (the driver's prepare_corpus says so too)
        _log.warning(line)
    tokens = np.load(path, mmap_mode="r")
    cap = data.max_train_tokens if split == "train" else data.max_eval_tokens
    if cap is None or cap >= len(tokens):
        return tokens
    source_sizes = json.loads(path.with_suffix(".json").read_text())["source_tokens"]
    pieces, start = [], 0
    for size in source_sizes:
        take = round(cap * size / len(tokens))
        pieces.append(tokens[start : start + take])
        start += size
    return np.concatenate(pieces)


def train_windows(data: DataConfig, tokens: np.ndarray, seed: int) -> TrainWindows:
    """The training windows of `data.pipeline`: babysweep's grid or the reference's chunks."""
    if data.pipeline == "babyllama2":
        return RandomChunkWindows(tokens, data.seq_length, seed)
    return TrainWindows(tokens, data.seq_length, seed)


class TrainWindows:
    """Training windows of `seq_length` tokens, cut at a fresh random offset each epoch.

    Every epoch shifts the whole window grid by one random offset in [0, seq_length), so
    the model sees other boundaries each time; window order is shuffled too. Both depend
    only on (seed, epoch), so a resumed run sees the same data. (BabyLlama-2 draws an offset
    per window instead: `RandomChunkWindows`.)
    """

    def __init__(self, tokens: np.ndarray, seq_length: int, seed: int) -> None:
        self.tokens, self.seq_length, self.seed = tokens, seq_length, seed
        # The same count every epoch whatever the offset, so the LR schedule is fixed.
        self.num_windows = (len(tokens) - (seq_length - 1)) // seq_length
        if self.num_windows < 1:
            raise TrainerError(
                f"data.max_train_tokens: {len(tokens)} training tokens do not fill one "
                f"window of data.seq_length={seq_length}; raise the cap or lower seq_length"
            )

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.num_windows // batch_size)

    def epoch_batches(self, epoch: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Yield (B, L) int64 batches of epoch `epoch` (1-based); the last may be smaller."""
        import torch

        rng = np.random.default_rng([self.seed, epoch])
        offset = int(rng.integers(0, self.seq_length))
        n, length = self.num_windows, self.seq_length
        grid = np.asarray(self.tokens[offset : offset + n * length]).reshape(n, length)
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            rows = grid[order[start : start + batch_size]]  # (B, L)
            yield torch.from_numpy(rows.astype(np.int64))


class RandomChunkWindows(TrainWindows):
    """BabyLlama-2's training windows (`BabylmDataset(random_chunk=True)`).

    An epoch has N // L - 1 windows; window i is fetched once per epoch, in shuffled order,
    as tokens[i*L + o : (i+1)*L + o] with a fresh offset o in [0, L) at every fetch. The
    reference draws order and offsets from the global RNG; here they depend only on
    (seed, epoch), so a resumed run sees the same data.
    """

    def __init__(self, tokens: np.ndarray, seq_length: int, seed: int) -> None:
        self.tokens, self.seq_length, self.seed = tokens, seq_length, seed
        self.num_windows = len(tokens) // seq_length - 1
        if self.num_windows < 1:
            raise TrainerError(
                f"data.max_train_tokens: {len(tokens)} training tokens do not fill two "
                f"windows of data.seq_length={seq_length}; raise the cap or lower seq_length"
            )

    def window_starts(self, epoch: int) -> np.ndarray:
        """Where each window of epoch `epoch` (1-based) starts, in the order they are fetched."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.num_windows)
        offsets = rng.integers(0, self.seq_length, size=self.num_windows)  # one per fetch
        return order * self.seq_length + offsets

    def epoch_batches(self, epoch: int, batch_size: int) -> Iterator[torch.Tensor]:
        import torch

        starts = self.window_starts(epoch)
        columns = np.arange(self.seq_length)
        for first in range(0, self.num_windows, batch_size):
            rows = np.asarray(self.tokens)[starts[first : first + batch_size, None] + columns]
            yield torch.from_numpy(rows.astype(np.int64))  # (B, L)


def eval_windows(tokens: np.ndarray, seq_length: int) -> np.ndarray:
    """Dev/test windows at offset 0, (N, L); the tail that fills no window is dropped."""
    n = len(tokens) // seq_length
    if n < 1:
        raise TrainerError(
            f"data.max_eval_tokens: {len(tokens)} evaluation tokens do not fill one window "
            f"of data.seq_length={seq_length}; raise the cap"
        )
    return np.asarray(tokens[: n * seq_length]).reshape(n, seq_length).astype(np.int64)


# --- the cache -------------------------------------------------------------------------


def _cache_dir(data: DataConfig) -> Path:
    assert data.cache_dir is not None  # resolved() fills it
    path = Path(data.cache_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainerError(
            f"data.cache_dir: cannot create {path} ({exc.strerror}); point it at a writable folder"
        ) from None
    return path


def _files_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _text_files(data: DataConfig, split: str, built: list[str]) -> list[Path]:
    """The files a split's tokenizer and stream read: the corpus's own, or (babyllama2)
    their cleaned copies in the cache; a corpus `sweep data prepare --clean` wrote is
    already clean and is read as it is."""
    files = corpus_files(data, split)
    if data.pipeline != "babyllama2" or is_cleaned_corpus(Path(data.corpus)):
        return files
    key = f"{split}-{_files_hash(files)}-clean{CLEANING_VERSION}"
    root = _cache_dir(data) / "cleaned"
    root.mkdir(exist_ok=True)
    final = root / key
    if final.is_dir():
        return [final / p.name for p in files]
    with FileLock(str(root / f"{key}.lock")):
        if not final.is_dir():
            left = uncleaned_sources(p.stem for p in files)
            if left:
                log.warning(
                    "data.pipeline babyllama2: the reference has no cleaner for %s; left as it is",
                    ", ".join(left),
                )
            staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
            try:
                for path in files:
                    # read_text/write_text as the reference's notebook: universal newlines
                    text = clean_text(path.stem, path.read_text(encoding="utf-8"))
                    (staging / path.name).write_text(text, encoding="utf-8")
                os.replace(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            built.append(f"cleaned {split}")
    return [final / p.name for p in files]


def _cached_tokenizer_dir(data: DataConfig, built: list[str], repaired: list[str]) -> Path:
    files = _text_files(data, "train", built)
    # Every tokenizer option is in the key (defaults keep the keys caches already hold).
    options = ("-prefix" if data.add_prefix_space else "") + (
        f"-minf{data.min_frequency}" if data.min_frequency else ""
    )
    if data.pipeline == "babyllama2":  # the hash is of the cleaned text it trains on
        options += "-babyllama2"
    key = f"bpe{data.vocab_size}{options}-{_files_hash(files)}-v{_CACHE_FORMAT}"
    root = _cache_dir(data) / "tokenizers"
    root.mkdir(exist_ok=True)
    final = root / key
    if _tokenizer_problem(final) is None:
        return final
    with FileLock(str(root / f"{key}.lock")):
        problem = _tokenizer_problem(final)
        if problem is None:  # another process built it meanwhile
            return final
        if final.exists():  # damaged: set aside, so the rebuilt one can take its place
            repaired.append(f"cache: {final}: {problem}; rebuilt it")
            shutil.rmtree(final, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
        try:
            tokenizer = _train_tokenizer(
                files,
                data.vocab_size,
                add_prefix_space=data.add_prefix_space,
                min_frequency=data.min_frequency,
                reference=data.pipeline == "babyllama2",
            )
            tokenizer.save_pretrained(str(staging))
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    built.append("tokenizer")
    return final


def _train_tokenizer(
    files: list[Path],
    vocab_size: int,
    *,
    add_prefix_space: bool,
    min_frequency: int,
    reference: bool = False,
) -> PreTrainedTokenizerBase:
    """Byte-level BPE as BabyLlama-2 trains it (NFKC, specials <pad> <s> </s> = ids 0 1 2).

    `reference`: the reference notebook's trainer exactly: no initial alphabet (only the
    bytes the files hold), and the pre-tokenizer's prefix space switched off after training,
    as the reference's GPT2TokenizerFast(tokenizer_file=...) does before it encodes and saves.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers as bpe_trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = [] if reference else pre_tokenizers.ByteLevel.alphabet()
    bpe_trainer = bpe_trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD_TOKEN, BOS_TOKEN, EOS_TOKEN],  # ids 0, 1, 2
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tokenizer.train([str(p) for p in files], bpe_trainer)
    if reference:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN
    )


def _backend_tokenizer(tokenizer_dir: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        raise TrainerError(f"{tokenizer_dir}: no tokenizer.json; pass a folder written by trainers")
    return Tokenizer.from_file(str(path))


def _cached_token_file(
    data: DataConfig, split: str, tokenizer: Tokenizer, built: list[str], repaired: list[str]
) -> Path:
    files = _text_files(data, split, built)
    whole = data.pipeline == "babyllama2"
    layout = "whole-" if whole else ""  # files encoded whole (babyllama2) or line by line
    fingerprint = tokenizer_fingerprint(tokenizer)
    key = f"{split}-{layout}{_files_hash(files)}-{fingerprint}-v{_CACHE_FORMAT}"
    root = _cache_dir(data) / "tokens"
    root.mkdir(exist_ok=True)
    final = root / f"{key}.npy"
    if _token_file_problem(final) is None:
        return final
    with FileLock(str(root / f"{key}.lock")):
        problem = _token_file_problem(final)
        if problem is None:
            return final
        if final.exists() or final.with_suffix(".json").exists():
            repaired.append(f"cache: {final}: {problem}; rebuilt it")
        bos = tokenizer.token_to_id(BOS_TOKEN)
        if bos is None and not whole:
            raise TrainerError(
                f"tokenizer: has no {BOS_TOKEN} token, so it was not trained by trainers; "
                f"delete the tokenizer folder under {_cache_dir(data)} to train it again"
            )
        dtype = np.uint16 if tokenizer.get_vocab_size() <= np.iinfo(np.uint16).max else np.uint32
        if whole:
            pieces = [_encode_whole_file(path, tokenizer, dtype) for path in files]
        else:
            assert bos is not None  # refused above
            pieces = [_encode_documents(path, tokenizer, bos, dtype) for path in files]
        fd, staging = tempfile.mkstemp(prefix=f"{key}.", suffix=".npy", dir=root)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, np.concatenate(pieces))
            sidecar = {
                "files": [p.name for p in files],
                "source_tokens": [len(p) for p in pieces],
                "bytes": os.path.getsize(staging),
                "sha256": _file_sha256(Path(staging)),
            }
            _write_atomically(final.with_suffix(".json"), json.dumps(sidecar))
            os.replace(staging, final)  # the .npy appears last: its presence means complete
        finally:
            if os.path.exists(staging):
                os.unlink(staging)
    built.append(split)
    return final


def _encode_documents(path: Path, tokenizer: Tokenizer, bos: int, dtype: type) -> np.ndarray:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids: list[int] = []
    for start in range(0, len(lines), _ENCODE_CHUNK_LINES):
        encodings = tokenizer.encode_batch(
            lines[start : start + _ENCODE_CHUNK_LINES], add_special_tokens=False
        )
        for encoding in encodings:
            ids.append(bos)
            ids.extend(encoding.ids)
    return np.asarray(ids, dtype=dtype)


def _encode_whole_file(path: Path, tokenizer: Tokenizer, dtype: type) -> np.ndarray:
    """The reference's stream: the file's text in one piece, newlines kept, no `<s>`."""
    encoding = tokenizer.encode(path.read_text(encoding="utf-8"), add_special_tokens=False)
    return np.asarray(encoding.ids, dtype=dtype)


# --- verifying cache entries ---------------------------------------------------------
# A cache entry can be damaged after it was written (a full disk, a sync that cut a file,
# someone tidying the folder): each is checked when found and rebuilt when damaged.


def _tokenizer_problem(folder: Path) -> str | None:
    """Why a cached tokenizer folder is unusable, or None (loading it is the check)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return "tokenizer.json is missing" if folder.exists() else "not built yet"
    return _tokenizer_load_problem(str(path), *_stamp(path))


@functools.lru_cache(maxsize=64)
def _tokenizer_load_problem(path: str, size: int, mtime_ns: int) -> str | None:
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(path)
    except Exception as exc:  # the Rust reader raises plain Exception on a cut-off file
        return f"tokenizer.json does not load ({' '.join(str(exc).split())[:120]})"
    return None


def _token_file_problem(path: Path) -> str | None:
    """Why a cached token stream is unusable (missing, cut off, changed, no sidecar), or None."""
    sidecar_path = path.with_suffix(".json")
    if not path.is_file():
        missing = "its sidecar is there but the .npy is missing"
        return missing if sidecar_path.exists() else "not built yet"
    try:
        sidecar = json.loads(sidecar_path.read_text())
        if not isinstance(sidecar, dict):
            raise TypeError("not a mapping")
        sources = [int(n) for n in sidecar["source_tokens"]]
    except FileNotFoundError:
        return f"its sidecar {sidecar_path.name} is missing"
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:
        return f"its sidecar {sidecar_path.name} is unreadable ({type(exc).__name__})"
    size = path.stat().st_size
    if "bytes" not in sidecar or "sha256" not in sidecar:  # written before checksums
        return _upgrade_sidecar(path, sidecar_path, sidecar, sum(sources))
    if not isinstance(sidecar["bytes"], int) or not isinstance(sidecar["sha256"], str):
        return f"its sidecar {sidecar_path.name} is unreadable (size or checksum not recorded)"
    if size != sidecar["bytes"]:
        return f"{size:,} bytes where its sidecar says {sidecar['bytes']:,} (cut off?)"
    if _cached_sha256(str(path), *_stamp(path)) != sidecar["sha256"]:
        return "its checksum differs from its sidecar's"
    if len(np.load(path, mmap_mode="r")) != sum(sources):  # caps read the per-source counts
        return "its sidecar's token counts differ from the .npy's"
    return None


def _upgrade_sidecar(path: Path, sidecar_path: Path, sidecar: dict, tokens: int) -> str | None:
    """An entry from before checksums: kept if it loads whole, and its sidecar completed."""
    try:
        if len(np.load(path, mmap_mode="r")) != tokens:
            return "its token count differs from its sidecar's"
    except (OSError, ValueError) as exc:
        return f"the .npy does not load ({' '.join(str(exc).split())[:120]})"
    sidecar.update(bytes=path.stat().st_size, sha256=_file_sha256(path))
    with contextlib.suppress(OSError):  # a read-only cache is still usable as it is
        _write_atomically(sidecar_path, json.dumps(sidecar))
    return None


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return _file_sha256(Path(path))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
