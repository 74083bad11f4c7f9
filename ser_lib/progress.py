"""One progress-callback signature for every long task.

Every function that takes seconds or more accepts ``progress``: a callable receiving one
:class:`Progress` per step. ``done`` and ``total`` are in the task's own unit (files, epochs,
seconds of audio), ``stage`` names the step (``"featurise"``, ``"epoch"``, ``"evaluate"``,
``"predict"``, ``"analyse"``, ``"done"``) and ``info`` carries extras (an epoch's losses).
The command line turns these into tqdm bars, the dashboard into ``st.progress``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Progress:
    """One step of a long task."""

    stage: str
    done: float
    total: float
    info: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """``done / total`` in [0, 1] (0 when the total is unknown)."""
        return min(1.0, max(0.0, self.done / self.total)) if self.total else 0.0


#: The signature every ``progress=`` argument takes.
ProgressCallback = Callable[[Progress], None]


def report(progress: ProgressCallback | None, stage: str, done: float, total: float, **info) -> None:
    """Call ``progress`` (if any) with one :class:`Progress`."""
    if progress is not None:
        progress(Progress(stage, done, total, info))
