"""What text the stored sweep trained on (`data.pipeline`), in the methods section's words."""

from __future__ import annotations

from typing import Any

__all__ = ["data_pipeline_text"]

_TEXTS = {
    "babysweep": (
        "babysweep: each line of the corpus a document, encoded as <s> + its tokens with the "
        "newline dropped; a byte-level BPE with all 256 bytes, trained on the raw train split; "
        "one grid of (N - L + 1) // L windows per epoch at a random offset"
    ),
    "babyllama2": (
        "babyllama2: the BabyLlama-2 reference's text: each file cleaned by its source's mrclean "
        "rules and encoded whole (newlines kept, no <s>); the BPE trained on the cleaned train "
        "files with the corpus's own alphabet; N // L - 1 windows per epoch, each at a fresh "
        "random offset. On babylm-mini its stream and 16,000-token vocabulary equal the "
        "reference recipe's; it differs in file order (by name, not directory listing), in the "
        "random draws (seeded by seed and epoch) and in the splits (selection on dev, held-out "
        "test; the reference selects on the last 5% of each train file)"
    ),
}


def data_pipeline_text(config: dict[str, Any]) -> str:
    """The stored config's `data.pipeline`, described; a config from before the setting is
    babysweep's."""
    data = config.get("data") if isinstance(config, dict) else None
    pipeline = str((data or {}).get("pipeline", "babysweep"))
    return _TEXTS.get(pipeline, pipeline)
