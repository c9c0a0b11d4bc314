"""Exceptions a user can cause. The CLI prints their message (no traceback) and exits 2."""

from __future__ import annotations

__all__ = ["ConfigError", "LeaseLost", "StoreError", "SweepError"]


class SweepError(Exception):
    """Base: the message names the field, path or URL (masked) and what to do."""


class ConfigError(SweepError):
    """sweep.yaml is invalid, or a path it names does not exist."""


class StoreError(SweepError):
    """The store cannot be reached, is from a newer schema, or a write failed."""


class LeaseLost(StoreError):
    """Another driver took this sweep's lease over: this driver must not write again."""
