"""One made-up call analysis with the shape of a real one (no audio, no model): for tests and benchmarks of writes.

:func:`sample_analysis` returns a :class:`~ser_lib.calls.CallAnalysis` whose windows, segments and
summary come from the real :func:`~ser_lib.calls.segments_from_windows` and :func:`~ser_lib.calls.summarize`
over random but plausible probabilities: turns alternate between the parties, each party's mood
drifts from its start to its end. (:mod:`ser_lib.store.synthetic` makes whole stores of rows in bulk.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def sample_analysis(
    *,
    duration_s: float = 300.0,
    roles: Sequence[str] = ("agent", "customer"),
    seed: int = 0,
    customer_start: float | None = None,
    customer_end: float | None = None,
    source: str = "sample.wav",
    hop_s: float = 1.0,
    window_s: float = 3.0,
):
    """A plausible :class:`~ser_lib.calls.CallAnalysis` of a ``duration_s`` call between ``roles``.

    Parameters
    ----------
    duration_s : float
        Length of the call; the parties take turns of 4-15 s with short gaps.
    roles : sequence of str
        One party per channel (a single role: a mono call).
    seed : int
        Everything random follows from it.
    customer_start, customer_end : float, optional
        The customer's (or a mono call's party's) mood at the start and end, in [-1, 1] (negative:
        angry and sad windows; positive: happy ones); random when not given.
    source : str
        The analysis's ``source``.
    hop_s, window_s : float
        The window grid inside each turn (1 s hops of 3 s windows, as the default settings).
    """
    from ..calls import TimelineSettings, segments_from_windows, summarize
    from ..calls.result import CallAnalysis
    from ..config import EMOTIONS

    rng = np.random.default_rng(seed)
    labels = list(EMOTIONS)
    roles = list(roles)
    cust = "customer" if "customer" in roles else roles[-1]
    moods = {r: (float(rng.uniform(-0.2, 0.4)), float(rng.uniform(-0.2, 0.4))) for r in roles}
    a = float(rng.uniform(-0.6, 0.6)) if customer_start is None else float(customer_start)
    b = float(rng.uniform(-0.8, 0.6)) if customer_end is None else float(customer_end)
    moods[cust] = (a, b)
    pos = {lab: i for i, lab in enumerate(labels)}
    speech, windows = [], []
    t, turn, region = float(rng.uniform(0.3, 1.5)), 0, {r: 0 for r in roles}
    while t < duration_s - 2.0:
        role = roles[turn % len(roles)]
        ch = roles.index(role)
        length = min(float(rng.uniform(4.0, 15.0)), duration_s - t)
        start, end = t, t + length
        speech.append({"channel": ch, "role": role, "region": region[role], "start_s": start, "end_s": end, "closed": True,
                       "judged": length >= 1.0})  # fmt: skip
        w0 = start
        while w0 + min(window_s, length) <= end + 1e-9:
            w1 = min(w0 + window_s, end)
            frac = ((w0 + w1) / 2) / duration_s
            mood = moods[role][0] + (moods[role][1] - moods[role][0]) * frac + float(rng.normal(0, 0.25))
            alpha = np.full(len(labels), 0.4)
            alpha[pos["neutral"]] += 2.0
            if mood < 0:
                alpha[pos["angry"]] += 6 * -mood
                alpha[pos["sad"]] += 3 * -mood
            else:
                alpha[pos["happy"]] += 6 * mood
                alpha[pos["calm"]] += 2 * mood
            p = rng.dirichlet(alpha)
            row = {"channel": ch, "role": role, "region": region[role], "start_s": w0, "end_s": w1,
                   "emotion": labels[int(np.argmax(p))], "confidence": float(p.max())}  # fmt: skip
            row.update({f"p_{lab}": float(v) for lab, v in zip(labels, p, strict=True)})
            windows.append(row)
            if w1 >= end:
                break
            w0 += hop_s
        region[role] += 1
        t = end + float(rng.uniform(0.2, 1.5))
        turn += 1
    from ..calls import sentiment

    wf = pd.DataFrame(windows)
    if len(wf):
        wf["sentiment"] = sentiment(wf[[f"p_{lab}" for lab in labels]].to_numpy(float), labels=labels)
    sp = pd.DataFrame(speech)
    segments = segments_from_windows(wf, sp, labels=labels)
    settings = TimelineSettings(window_s=window_s, hop_s=hop_s)
    summary = summarize(segments, wf, sp, duration_s=duration_s, roles=roles, labels=labels, settings=settings)
    return CallAnalysis(
        segments=segments, windows=wf, speech=sp, summary=summary, duration_s=duration_s, roles=roles, labels=labels,
        settings={"window_s": window_s, "hop_s": hop_s}, source=source, model="sample",
    )  # fmt: skip
