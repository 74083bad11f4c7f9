"""Alerts on a live call: a party whose sentiment stays low, or whose anger or disgust spikes.

Both watch the final (smoothed) windows of the parties in :attr:`AlertSettings.roles` (the
customer, by default) and raise each alert **once per episode**:

- ``sustained_negative``: the party's windows stay below ``negative_below`` sentiment for at least
  ``sustained_s`` seconds (from the first low window's start to the latest one's end). The
  episode ends when a window comes back to ``negative_below + rearm_margin`` or above, or after
  ``max_gap_s`` without a low window from that party; only then can the next one be raised.
- ``emotion_spike``: the probability of one of ``spike_emotions`` (angry, disgust) reaches
  ``spike_above`` in a window. It re-arms once that probability has fallen below
  ``spike_above - rearm_margin``.

:class:`AlertTracker` is pure (windows in, alert payloads out); the service adds the event's
common fields and records every alert in the call's results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..calls import format_clock
from ..errors import ParameterError


@dataclass(frozen=True)
class AlertSettings:
    """When the service raises an alert (``python -m ser_lib serve --alert-*``).

    Parameters
    ----------
    roles : tuple of str
        Parties watched (default the customer; ``("*",)`` watches every party).
    negative_below : float
        Sentiment (in [-1, 1]) under which a window counts as negative.
    sustained_s : float
        Seconds of negative windows that raise a ``sustained_negative`` alert.
    spike_emotions : tuple of str
        Emotions whose probability can raise an ``emotion_spike``.
    spike_above : float
        Probability at or above which one of ``spike_emotions`` raises an ``emotion_spike``.
    rearm_margin : float
        Hysteresis: how far back past its threshold a value must go before the next episode.
    max_gap_s : float
        A negative episode also ends after this long without a negative window from the party.

    Raises
    ------
    ParameterError
        For a threshold outside its range or a duration that is not positive.
    """

    roles: tuple[str, ...] = ("customer",)
    negative_below: float = -0.3
    sustained_s: float = 10.0
    spike_emotions: tuple[str, ...] = ("angry", "disgust")
    spike_above: float = 0.7
    rearm_margin: float = 0.1
    max_gap_s: float = 20.0

    def __post_init__(self):
        if not -1.0 < self.negative_below < 1.0:
            raise ParameterError(f"negative_below={self.negative_below} must be a sentiment between -1 and 1, e.g. -0.3")
        if not self.sustained_s > 0:
            raise ParameterError(f"sustained_s={self.sustained_s} must be a positive number of seconds, e.g. 10")
        if not 0.0 < self.spike_above <= 1.0:
            raise ParameterError(f"spike_above={self.spike_above} must be a probability in (0, 1], e.g. 0.7")
        if not 0.0 <= self.rearm_margin < 1.0:
            raise ParameterError(f"rearm_margin={self.rearm_margin} must be in [0, 1), e.g. 0.1")
        if not self.max_gap_s > 0:
            raise ParameterError(f"max_gap_s={self.max_gap_s} must be a positive number of seconds, e.g. 20")
        if not self.roles or any(not isinstance(r, str) or not r for r in self.roles):
            raise ParameterError(f"roles={self.roles} must name at least one party, e.g. ('customer',)")

    def watches(self, role: str) -> bool:
        return "*" in self.roles or role in self.roles

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Party:
    neg_start: float | None = None
    neg_end: float = 0.0
    neg_sum: float = 0.0
    neg_count: int = 0
    neg_alerted: bool = False
    spike_armed: dict[str, bool] = field(default_factory=dict)


class AlertTracker:
    """Watches one call's final windows; returns the alerts they raise (once per episode)."""

    def __init__(self, settings: AlertSettings | None = None, *, id_prefix: str = "alert"):
        self.settings = settings or AlertSettings()
        self.id_prefix = id_prefix
        self._parties: dict[str, _Party] = {}
        self.raised: list[dict] = []

    def update(
        self, *, role: str, channel: int, start_s: float, end_s: float, sentiment: float, probabilities: dict
    ) -> list[dict]:
        """Alerts raised by one final window of ``role`` (windows of a party must come in time order).

        Returns
        -------
        alerts : list of dict
            ``alert_id`` (``<id_prefix>-<n>``), ``kind``, ``role``, ``channel``, ``start_s``, ``end_s``, ``value``, ``threshold``,
            ``emotion`` (spikes), ``message``.
        """
        s = self.settings
        if not s.watches(role):
            return []
        p = self._parties.setdefault(role, _Party())
        out = []
        # sustained negative sentiment
        if p.neg_start is not None and start_s - p.neg_end > s.max_gap_s:
            p.neg_start = None
        if sentiment < s.negative_below:
            if p.neg_start is None:
                p.neg_start, p.neg_sum, p.neg_count, p.neg_alerted = start_s, 0.0, 0, False
            p.neg_end = max(p.neg_end, end_s)
            p.neg_sum += sentiment
            p.neg_count += 1
            if not p.neg_alerted and p.neg_end - p.neg_start >= s.sustained_s:
                p.neg_alerted = True
                mean = p.neg_sum / p.neg_count
                out.append(
                    {
                        "kind": "sustained_negative",
                        "role": role,
                        "channel": int(channel),
                        "start_s": round(p.neg_start, 3),
                        "end_s": round(p.neg_end, 3),
                        "value": round(mean, 4),
                        "threshold": s.negative_below,
                        "emotion": None,
                        "message": f"{role} sentiment below {s.negative_below:+.2f} for {p.neg_end - p.neg_start:.0f} s "
                        f"({format_clock(p.neg_start)}-{format_clock(p.neg_end)}), mean {mean:+.2f}",
                    }
                )
        elif sentiment >= s.negative_below + s.rearm_margin:
            p.neg_start = None
        # spikes of anger / disgust
        for emotion in s.spike_emotions:
            value = float(probabilities.get(emotion, 0.0))
            armed = p.spike_armed.get(emotion, True)
            if armed and value >= s.spike_above:
                p.spike_armed[emotion] = False
                out.append(
                    {
                        "kind": "emotion_spike",
                        "role": role,
                        "channel": int(channel),
                        "start_s": round(start_s, 3),
                        "end_s": round(end_s, 3),
                        "value": round(value, 4),
                        "threshold": s.spike_above,
                        "emotion": emotion,
                        "message": f"{role} {emotion} {value:.2f} at {format_clock(start_s)}-{format_clock(end_s)}",
                    }
                )
            elif not armed and value < s.spike_above - s.rearm_margin:
                p.spike_armed[emotion] = True
        for a in out:
            self.raised.append({"alert_id": f"{self.id_prefix}-{len(self.raised) + 1}", **a})
        return self.raised[len(self.raised) - len(out) :]
