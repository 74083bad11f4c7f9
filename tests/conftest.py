"""Shared fixtures: generated audio, fake corpus trees, and the shared corpora (skipped if absent).

- ``sr``: the library's sample rate (16 kHz).
- ``make_tone(...)``: write a sine/noise WAV in ``tmp_path`` and return its path.
- ``fake_corpus(...)``: build a small tree of the four corpora with realistic file names and
  generated voice-like audio; parameterisable (speakers per corpus, files per emotion) so a test
  can build a tree big enough for a tiny training run.
- ``shared_corpora`` / ``raw_sample``: ``../shared/corpora`` (or ``$SER_SHARED_CORPORA``) and its
  ``raw-sample/`` folder, or a skip that says why.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _call_store_in_tmp(tmp_path_factory, monkeypatch):
    """Commands that write the call store by default (analyze-call, analyze-calls) write to a temporary one."""
    monkeypatch.setenv("SER_CALL_STORE", str(tmp_path_factory.mktemp("store") / "calls.duckdb"))


# --- generated audio ----------------------------------------------------------------------------


def tone(
    seconds: float = 1.0,
    *,
    sr: int = 16_000,
    channels: int = 1,
    freq: float | None = 440.0,
    amplitude: float = 0.5,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """A sine at ``freq`` (``None``: white noise only) of peak ``amplitude``, plus optional noise.

    Returns [shape=(n,) or (n, channels)], float32. Channel ``c`` is at ``freq * (1 + 0.5 c)`` so
    channels differ (a mono mix is then distinguishable from either channel).
    """
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    cols = []
    for c in range(channels):
        if freq is None:
            x = rng.uniform(-1.0, 1.0, n)
        else:
            x = np.sin(2 * np.pi * freq * (1 + 0.5 * c) * t)
        x = amplitude * x + noise * rng.standard_normal(n)
        cols.append(x)
    y = np.stack(cols, axis=1) if channels > 1 else cols[0]
    return y.astype(np.float32)


def voice(seconds: float, *, sr: int, f0: float, brightness: float = 1.0, seed: int = 0) -> np.ndarray:
    """Voice-like audio: a glottal-ish harmonic series on a wobbling f0, syllable envelope, noise."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f = f0 * (1 + 0.06 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f) / sr
    y = np.zeros(n)
    for k in range(1, 16):
        if k * f0 * 1.1 >= sr / 2:
            break
        y += np.sin(k * phase) / k ** (1.6 / brightness)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)) ** 2
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)  # 50 ms fades, as in a real recording
    y = y * envelope * fade
    y = 0.6 * y / np.max(np.abs(y)) + 0.01 * rng.standard_normal(n)
    return y.astype(np.float32)


@pytest.fixture
def sr() -> int:
    return 16_000


@pytest.fixture
def synth() -> SimpleNamespace:
    """In-memory signals: ``synth.tone(seconds, sr=..., freq=..., ...)`` and ``synth.voice(seconds, sr=..., f0=...)``."""
    return SimpleNamespace(tone=tone, voice=voice)


@pytest.fixture
def make_tone(tmp_path):
    """Factory: ``make_tone(seconds=1.0, sr=16000, channels=1, freq=440.0, subtype="PCM_16",
    amplitude=0.5, noise=0.0, name=None, format=None) -> Path`` (``freq=None``: white noise)."""
    counter = itertools.count()

    def _make(
        seconds: float = 1.0,
        sr: int = 16_000,
        channels: int = 1,
        freq: float | None = 440.0,
        subtype: str | None = "PCM_16",
        amplitude: float = 0.5,
        *,
        noise: float = 0.0,
        name: str | None = None,
        format: str | None = None,
    ) -> Path:
        folder = tmp_path / "tones"
        folder.mkdir(exist_ok=True)
        path = folder / (name or f"tone{next(counter)}_{sr}hz_{channels}ch.wav")
        y = tone(seconds, sr=sr, channels=channels, freq=freq, amplitude=amplitude, noise=noise)
        sf.write(str(path), y, sr, subtype=subtype, format=format)
        return path

    return _make


# --- fake corpus trees --------------------------------------------------------------------------

RAVDESS_EMOTIONS = ("01", "02", "03", "04", "05", "06", "07", "08")
TESS_EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "ps")
TESS_WORDS = ("back", "bite", "bar", "base", "bath", "bean", "beg", "bone", "boat", "burn")
SAVEE_CODES = ("a", "d", "f", "h", "n", "sa", "su")
CREMA_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CREMA_SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE")
CORPORA = ("RAVDESS", "TESS", "SAVEE", "CREMA-D")


def _tess_folder(speaker: str, emotion: str) -> str:
    """TESS folder names as downloaded, mixed case included."""
    if emotion == "ps":
        return f"{speaker}_pleasant_surprised" if speaker == "YAF" else f"{speaker}_Pleasant_surprise"
    if speaker == "OAF" and emotion in ("fear", "sad"):
        return f"{speaker}_{emotion.capitalize()}"
    return f"{speaker}_{emotion}"


def build_fake_corpus(
    root: Path,
    *,
    speakers: int = 1,
    per_emotion: int = 1,
    corpora: tuple[str, ...] = CORPORA,
    sr: int = 16_000,
    seconds: tuple[float, float] = (1.0, 2.0),
    extras: bool = True,
) -> Path:
    """Write a fake corpus tree under ``root`` and return ``root``.

    ``speakers`` per corpus (TESS has at most 2, SAVEE at most 4), ``per_emotion`` files per
    speaker and emotion, every emotion of each corpus. Audio is voice-like, 1-2 s at ``sr``, with
    pitch and brightness depending on speaker and emotion (so a tiny model can learn something).
    ``extras`` adds ``.DS_Store``, ``README.txt`` and an unparseable ``notes.wav``.

    Layout: ``ravdess/Actor_01/03-01-05-01-02-01-01.wav``; ``tess/OAF_angry/OAF_back_angry.wav``,
    ``tess/YAF_pleasant_surprised/YAF_bite_ps.wav``; ``savee/DC_a01.wav`` (first speaker) and
    ``savee/ALL/JE_su03.wav`` (others); ``crema-d/AudioWAV/1001_DFA_ANG_XX.wav``.
    """
    root.mkdir(parents=True, exist_ok=True)
    counter = itertools.count()

    def write(path: Path, speaker: int, emotion: int) -> None:
        i = next(counter)
        rng = np.random.default_rng(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        y = voice(
            float(rng.uniform(*seconds)),
            sr=sr,
            f0=(110.0 + 35.0 * (speaker % 4)) * (1.0 + 0.1 * emotion),
            brightness=0.7 + 0.15 * emotion,
            seed=i,
        )
        sf.write(str(path), y, sr, subtype="PCM_16")

    if "RAVDESS" in corpora:
        for s in range(speakers):
            actor = s + 1
            for e, emo in enumerate(RAVDESS_EMOTIONS):
                # (intensity, statement, repetition); neutral has no strong intensity
                combos = [(i, st, r) for i in ("01", "02") for st in ("01", "02") for r in ("01", "02")]
                if emo == "01":
                    combos = [c for c in combos if c[0] == "01"]
                for k in range(per_emotion):
                    i, st, r = combos[k % len(combos)]
                    name = f"03-01-{emo}-{i}-{st}-{r}-{actor:02d}.wav"
                    write(root / "ravdess" / f"Actor_{actor:02d}" / name, s, e)
    if "TESS" in corpora:
        for s, spk in enumerate(("OAF", "YAF")[: min(speakers, 2)]):
            for e, emo in enumerate(TESS_EMOTIONS):
                for k in range(per_emotion):
                    word = TESS_WORDS[k % len(TESS_WORDS)] + ("" if k < len(TESS_WORDS) else "x" * (k // 10))
                    write(root / "tess" / _tess_folder(spk, emo) / f"{spk}_{word}_{emo}.wav", s, e)
    if "SAVEE" in corpora:
        for s, spk in enumerate(("DC", "JE", "JK", "KL")[: min(speakers, 4)]):
            folder = root / "savee" if s == 0 else root / "savee" / "ALL"
            for e, code in enumerate(SAVEE_CODES):
                for k in range(per_emotion):
                    write(folder / f"{spk}_{code}{k + 1:02d}.wav", s, e)
    if "CREMA-D" in corpora:
        for s in range(speakers):
            actor = 1001 + s
            for e, emo in enumerate(CREMA_EMOTIONS):
                for k in range(per_emotion):
                    sentence = CREMA_SENTENCES[k % len(CREMA_SENTENCES)]
                    level = ("LO", "MD", "HI")[k % 3] if sentence == "IEO" else "XX"
                    write(root / "crema-d" / "AudioWAV" / f"{actor}_{sentence}_{emo}_{level}.wav", s, e)
    if extras:
        (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
        (root / "README.txt").write_text("Emotional speech corpora, unpacked as downloaded.\n")
        (root / "notes.wav").write_bytes(b"these are my notes, not audio\n" * 4)
    return root


@pytest.fixture
def fake_corpus(tmp_path):
    """Factory: ``fake_corpus(speakers=1, per_emotion=1, corpora=(...), sr=16000, seconds=(1, 2),
    extras=True) -> Path`` of a new tree under ``tmp_path`` (see :func:`build_fake_corpus`).

    With the defaults: RAVDESS 8, TESS 7, SAVEE 7, CREMA-D 6 files, plus the three extras.
    """
    counter = itertools.count()

    def _make(**kwargs) -> Path:
        i = next(counter)
        return build_fake_corpus(tmp_path / ("corpora" if i == 0 else f"corpora-{i}"), **kwargs)

    return _make


# --- the shared corpora -------------------------------------------------------------------------


def shared_corpora_path() -> Path:
    """``$SER_SHARED_CORPORA``, else ``<repo>/../shared/corpora``."""
    env = os.environ.get("SER_SHARED_CORPORA")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    path = shared_corpora_path()
    if not path.is_dir():
        pytest.skip(f"../shared/corpora not found: no folder at {path} (set SER_SHARED_CORPORA to its location)")
    return path


@pytest.fixture(scope="session")
def raw_sample(shared_corpora) -> Path:
    path = shared_corpora / "raw-sample"
    if not path.is_dir():
        pytest.skip(f"../shared/corpora not found: {shared_corpora} has no raw-sample/ folder of original files")
    return path


# --- a generated call analysis --------------------------------------------------------------------

#: The generated call: 60 s, agent on channel 0, customer on channel 1. Per speech region:
#: ``(role, start_s, end_s, [(emotion, probability of it, until_s), ...])``; a window takes the
#: first entry whose ``until_s`` is after its centre, and gives its emotion that probability (the
#: rest spread evenly over the other emotions). A region without entries is too short to judge.
GENERATED_CALL_S = 60.0
GENERATED_CALL = (
    ("agent", 1.0, 9.0, [("neutral", 0.7, 99.0)]),
    ("customer", 10.0, 22.0, [("neutral", 0.7, 16.0), ("angry", 0.7, 99.0)]),
    ("agent", 24.0, 30.0, [("happy", 0.7, 99.0)]),
    ("customer", 32.0, 44.0, [("angry", 0.9, 99.0)]),
    ("agent", 46.0, 58.0, [("neutral", 0.7, 99.0)]),
    ("customer", 50.0, 50.6, []),  # a "yes": speech, too short to judge
)


def generated_probabilities(emotion: str, p: float, labels=None) -> np.ndarray:
    """``p`` on ``emotion``, the rest spread evenly over the other labels [shape=(n_labels,)]."""
    from ser_lib.config import EMOTIONS

    labels = list(labels or EMOTIONS)
    out = np.full(len(labels), (1.0 - p) / (len(labels) - 1))
    out[labels.index(emotion)] = p
    return out


def generated_call_analysis():
    """A :class:`ser_lib.calls.CallAnalysis` of :data:`GENERATED_CALL`, without audio or a model.

    Windows of 3 s every 1 s in each judged region (as the analyser places them), probabilities
    as the table says; segments and summary come from :mod:`ser_lib.calls` itself.
    """
    import pandas as pd

    from ser_lib.calls import CallAnalysis, WindowResult, segments_from_windows, sentiment, summarize, windows_frame
    from ser_lib.config import EMOTIONS

    labels, roles = list(EMOTIONS), ["agent", "customer"]
    results, speech = [], []
    for role, start, end, plan in GENERATED_CALL:
        channel = roles.index(role)
        region = sum(1 for r in speech if r["channel"] == channel)
        where = {"channel": channel, "role": role, "region": region}
        speech.append({**where, "start_s": start, "end_s": end, "closed": True, "judged": bool(plan)})
        for a in np.arange(start, end - 3.0 + 1e-9, 1.0) if plan else []:
            emotion, p, _ = next(x for x in plan if a + 1.5 < x[2])
            probs = generated_probabilities(emotion, p, labels)
            value = float(sentiment(probs[None, :], labels=labels)[0])
            results.append(
                WindowResult(channel, role, region, float(a), float(a) + 3.0, emotion, p, value, probs, probs, a + 3.0, a + 4.0)
            )
    windows = windows_frame(results, labels)
    speech = pd.DataFrame(speech)
    segments = segments_from_windows(windows, speech, labels=labels)
    summary = summarize(segments, windows, speech, duration_s=GENERATED_CALL_S, roles=roles, labels=labels, name="generated.wav")
    return CallAnalysis(
        segments, windows, speech, summary, GENERATED_CALL_S, roles, labels, settings={}, source="generated.wav", model="none"
    )


@pytest.fixture
def call_analysis():
    """:func:`generated_call_analysis`: a 60 s two-party call analysis built from tables."""
    return generated_call_analysis()
