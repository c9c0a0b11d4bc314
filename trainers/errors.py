"""The one exception a user of trainers/ can cause (bad config, missing data, bad teacher)."""

from __future__ import annotations

__all__ = ["NonFiniteLossError", "TrainerError"]


class TrainerError(Exception):
    """A problem the user can fix: the message names the field or path and what to do."""


class NonFiniteLossError(TrainerError):
    """The loss became NaN or infinite; the message names the epoch and step."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        super().__init__(
            f"loss became {value} at epoch {epoch}, step {step}; "
            "lower training.lr or enable training.grad_clip"
        )
        self.epoch, self.step, self.value = epoch, step, value

    def __reduce__(self) -> tuple[type, tuple[int, int, float]]:
        # Ray copies and pickles exceptions across processes; keep the fields.
        return (type(self), (self.epoch, self.step, self.value))
