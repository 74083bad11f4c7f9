"""Build realistic test calls from held-out speakers' clips, with the truth of every turn.

A call alternates agent and customer turns separated by pauses. A turn is one to three clips of
one speaker with one emotion, each trimmed of its leading and trailing silence (30 dB below its
peak) and joined by 0.15-0.35 s gaps, shorter than the VAD's 0.5 s minimum pause, so a turn is
one stretch of speech whose true start and end are known. The agent is mostly neutral or
calm (sometimes happy); the customer's emotion drifts (it keeps the previous turn's emotion half
of the time). Levels are set per turn (-26 dBFS RMS, +-3 dB), every channel gets faint line noise
(-66 dBFS), and pauses between turns last 0.7-2.5 s, with now and then a long hold (6-15 s).

Every call is written twice:

- ``NAME_stereo.wav``: 16 kHz PCM, left channel agent, right channel customer;
- ``NAME_mono8k.wav``: both parties mixed, through the telephone channel
  (:func:`ser_lib.augment.telephone_channel`: 300-3400 Hz, G.711 mu-law), stored as 8 kHz mu-law;

plus ``NAME.json`` with the turns (role, emotion, start_s, end_s, speaker, clips) and
``calls.json`` listing the calls.

Held-out speakers: ``training.test_speakers`` of the model's ``card.json`` when it lists some; for
a final model trained on every speaker, the test speakers of the held-out run its metrics come from
(``training.held_out_run.test_speakers``; accuracy on them should then be measured with that run's
bundle, which ``bench_calls.py`` does); otherwise a deterministic rule: per corpus the last 20% of
its speakers in sorted order (at least one). The choice is printed and stored in ``calls.json``.

Usage::

    python benchmarks/make_calls.py --out data/calls [--model models/default] [--corpora ../shared/corpora]
                                    [--calls 8] [--turns 12] [--seed 0] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ser_lib.audio import load_audio, write_audio
from ser_lib.augment import telephone_channel
from ser_lib.config import SAMPLE_RATE, default_model_path

REPO_ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("make_calls")

ROLES = ("agent", "customer")
AGENT_EMOTIONS = {"neutral": 0.6, "calm": 0.25, "happy": 0.15}
TURN_LEVEL_DB = -26.0
NOISE_DB = -66.0


@dataclass
class Turn:
    role: str
    emotion: str
    start_s: float
    end_s: float
    speaker: str
    clips: list[str] = field(default_factory=list)


@dataclass
class CallSpec:
    name: str
    duration_s: float
    agent: str
    customer: str
    turns: list[Turn]
    stereo: str = ""
    mono8k: str = ""


def default_corpora() -> Path:
    env = os.environ.get("SER_SHARED_CORPORA") or os.environ.get("SER_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpora"


def held_out_speakers(manifest, model: str | os.PathLike | None) -> tuple[list[str], str]:
    """The speakers calls are built from, and a sentence saying how they were chosen."""
    card_path = Path(model or default_model_path()) / "card.json"
    listed: list[str] = []
    trained: set[str] = set()
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        training = card.get("training") or {}
        listed = [s for s in training.get("test_speakers") or [] if s in set(manifest["speaker"])]
        trained = set(training.get("train_speakers") or [])
        if not listed:  # a final model trained on everyone, with metrics from a held-out run
            run = training.get("held_out_run") or {}
            sibling = [s for s in run.get("test_speakers") or [] if s in set(manifest["speaker"])]
            if sibling:
                note = (
                    f"the held-out run's test speakers recorded in {card_path} ({len(sibling)} speakers)"
                    + ("; WARNING: this model was trained on them too, so its accuracy on them is optimistic: "
                       "measure accuracy with the held-out run's bundle" if set(sibling) & trained else "")
                )
                return sorted(sibling), note
    if listed:
        return sorted(listed), f"the test speakers of {card_path} ({len(listed)} speakers, never seen in training)"
    chosen = []
    for _, group in manifest.groupby("corpus", sort=True):
        speakers = sorted(group["speaker"].unique())
        k = max(1, int(round(0.2 * len(speakers))))
        chosen += speakers[-k:]
    unseen = [s for s in chosen if s not in trained]
    if trained and unseen:
        return (
            unseen,
            f"rule: last 20% of each corpus's speakers, minus those {card_path} was trained on ({len(unseen)} speakers)",
        )
    why = f"rule: last 20% of each corpus's speakers in sorted order ({len(chosen)} speakers)"
    if trained:
        why += f"; WARNING: {card_path} was trained on all of them, so the accuracy figures are optimistic"
    elif not card_path.is_file():
        why += f"; no card at {card_path} to read the model's test speakers from"
    return chosen, why


def _trim(y: np.ndarray) -> np.ndarray:
    """The clip without its leading and trailing silence (the corpora pad clips with up to a second)."""
    import librosa

    _, (a, b) = librosa.effects.trim(y, top_db=30, frame_length=512, hop_length=128)
    return y[a:b]


def _level(y: np.ndarray, db: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) or 1e-9
    out = y * (10 ** (db / 20) / rms)
    peak = float(np.max(np.abs(out)))
    return (out / peak * 0.98 if peak > 0.98 else out).astype(np.float32)


def _pick_emotion(rng, options: dict[str, float], available: set[str]) -> str:
    names = [e for e in options if e in available] or sorted(available)
    p = np.array([options.get(e, 1.0) for e in names], float)
    return str(rng.choice(names, p=p / p.sum()))


def build_call(
    manifest, speakers: list[str], *, name: str, n_turns: int, rng: np.random.Generator
) -> tuple[np.ndarray, CallSpec]:
    """One call [shape=(2, n)] at 16 kHz from two different held-out speakers, and its truth."""
    pool = manifest[manifest["speaker"].isin(speakers)]
    by_speaker = {s: g for s, g in pool.groupby("speaker")}
    agent, customer = rng.choice(sorted(by_speaker), size=2, replace=False)
    parts: list[tuple[int, int, np.ndarray]] = []
    turns: list[Turn] = []
    t = float(rng.uniform(0.3, 1.0))
    customer_emotion = None
    for k in range(n_turns):
        role = ROLES[k % 2]
        speaker = agent if role == "agent" else customer
        clips = by_speaker[speaker]
        available = set(clips["emotion"])
        if role == "agent":
            emotion = _pick_emotion(rng, AGENT_EMOTIONS, available)
        else:
            keep = customer_emotion in available and rng.random() < 0.5
            emotion = customer_emotion if keep else str(rng.choice(sorted(available)))
            customer_emotion = emotion
        options = clips[clips["emotion"] == emotion]
        chosen = options.sample(n=min(len(options), int(rng.integers(1, 4))), random_state=int(rng.integers(1 << 31)))
        pieces = []
        for i, path in enumerate(chosen["path"]):
            y = load_audio(path, sr=SAMPLE_RATE, validate=False)
            pieces.append(_trim(y))
            if i < len(chosen) - 1:
                pieces.append(np.zeros(int(rng.uniform(0.15, 0.35) * SAMPLE_RATE), np.float32))
        y = _level(np.concatenate(pieces), TURN_LEVEL_DB + float(rng.uniform(-3, 3)))
        start = int(round(t * SAMPLE_RATE))
        parts.append((ROLES.index(role), start, y))
        turns.append(
            Turn(role, emotion, round(t, 3), round(t + len(y) / SAMPLE_RATE, 3), str(speaker), [str(p) for p in chosen["path"]])
        )
        pause = float(rng.uniform(6.0, 15.0)) if rng.random() < 0.08 else float(rng.uniform(0.7, 2.5))
        t += len(y) / SAMPLE_RATE + pause
    total = int(round((t + float(rng.uniform(0.5, 1.5))) * SAMPLE_RATE))
    x = (10 ** (NOISE_DB / 20) * rng.standard_normal((2, total))).astype(np.float32)
    for channel, start, y in parts:
        x[channel, start : start + len(y)] += y
    return x, CallSpec(name, round(total / SAMPLE_RATE, 3), str(agent), str(customer), turns)


def mono_telephone(x: np.ndarray) -> np.ndarray:
    """Both parties mixed [shape=(n,)] at 8 kHz, through the telephone channel."""
    mix = np.clip(x.sum(axis=0), -1.0, 1.0)
    phone = telephone_channel(mix, sr=SAMPLE_RATE)
    from ser_lib.audio import resample

    return resample(phone, orig_sr=SAMPLE_RATE, target_sr=8000)


def make_calls(
    out: str | os.PathLike,
    *,
    corpora: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    n_calls: int = 8,
    n_turns: int = 12,
    seed: int = 0,
) -> dict:
    """Write ``n_calls`` calls (stereo and 8 kHz mono) into ``out``; return the ``calls.json`` content."""
    from ser_lib.corpora import find_corpora

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = find_corpora(corpora or default_corpora(), durations=False).manifest
    speakers, why = held_out_speakers(manifest, model)
    rng = np.random.default_rng(seed)
    calls = []
    for i in range(n_calls):
        name = f"call{i:02d}"
        x, spec = build_call(manifest, speakers, name=name, n_turns=n_turns, rng=rng)
        spec.stereo = write_audio(out / f"{name}_stereo.wav", x, sr=SAMPLE_RATE, subtype="PCM_16").name
        spec.mono8k = write_audio(out / f"{name}_mono8k.wav", mono_telephone(x), sr=8000, subtype="ULAW").name
        (out / f"{name}.json").write_text(json.dumps(asdict(spec), indent=1))
        calls.append(asdict(spec))
        logger.info(
            "%s: %.0f s, %d turns, agent %s, customer %s", name, spec.duration_s, len(spec.turns), spec.agent, spec.customer
        )
    index = {"held_out": why, "speakers": speakers, "seed": seed, "calls": calls}
    (out / "calls.json").write_text(json.dumps(index, indent=1))
    return index


def long_call(manifest, speakers, *, minutes: float, rng: np.random.Generator) -> tuple[np.ndarray, list[Turn]]:
    """A call of about ``minutes`` minutes [shape=(2, n)] (for the speed and memory benchmarks)."""
    x, spec = build_call(manifest, speakers, name="long", n_turns=max(2, int(minutes * 60 / 5.5)), rng=rng)
    return x, spec.turns


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/calls", help="folder for the calls (default data/calls, git-ignored)")
    p.add_argument("--corpora", help="corpora folder (default $SER_SHARED_CORPORA, $SER_DATA_DIR, then ../shared/corpora)")
    p.add_argument("--model", help="bundle whose card names the held-out speakers (default models/default)")
    p.add_argument("--calls", type=int, default=8, help="number of calls (default 8)")
    p.add_argument("--turns", type=int, default=12, help="turns per call (default 12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="3 calls of 8 turns")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    n_calls, n_turns = (3, 8) if args.quick else (args.calls, args.turns)
    index = make_calls(args.out, corpora=args.corpora, model=args.model, n_calls=n_calls, n_turns=n_turns, seed=args.seed)
    print(f"Held-out speakers: {index['held_out']}")
    total = sum(c["duration_s"] for c in index["calls"])
    print(f"Wrote {len(index['calls'])} calls ({total / 60:.1f} min) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
