"""Calibration, "uncertain" and "no speech found", measured.

1. Calibration: expected calibration error (15 bins, top label) of the bundle's held-out per-file
   predictions (``evaluation.json``) before and after temperature scaling, cross-fitted over two
   halves of the held-out speakers (:func:`ser_lib.calibration.calibrate_evaluation`), and the
   shipped temperature as the card records it.
2. "Uncertain": the threshold the card records, its coverage (share of clips named an emotion) and
   the accuracy of those, on all held-out clips and on each half of the speakers.
3. "No speech found" on generated signals (silence, DC, white/pink/brown noise, pure tones,
   harmonic tones, chords, melodies, sweeps, square and sawtooth waves, AM tones, DTMF, ring tone,
   clicks) - every one should be "no speech" - and on every held-out corpus clip listed in
   ``evaluation.json`` (3,636 for the shipped default, all seven corpora) - none should be.

Run::

    nice -n 5 python benchmarks/bench_decisions.py --model models/default            # all held-out clips (~8 min on 2 cores)
    python benchmarks/bench_decisions.py --model models/default --limit 200           # a sample
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ser_lib.audio import load_audio  # noqa: E402
from ser_lib.calibration import apply_temperature, calibrate_evaluation, predictions_arrays, threshold_effect  # noqa: E402
from ser_lib.cards import read_card  # noqa: E402
from ser_lib.decisions import speech_check  # noqa: E402
from ser_lib.errors import SERError  # noqa: E402

SR = 16_000


def generated_signals(seconds: float = 3.0, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Signals without speech: every one must be "no speech found"."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR

    def coloured(power: float) -> np.ndarray:
        f = np.fft.rfft(rng.normal(size=n))
        k = np.arange(len(f), dtype=float)
        k[0] = 1.0
        y = np.fft.irfft(f / k ** (power / 2), n)
        return y / np.abs(y).max()

    sig: dict[str, np.ndarray] = {"silence": np.zeros(n), "near-silence": 1e-5 * rng.normal(size=n)}
    for a in (0.01, 0.1, 0.5, 0.9, -0.3):
        sig[f"dc {a}"] = np.full(n, a)
    for a in (0.003, 0.03, 0.3):
        sig[f"white noise {a}"] = np.clip(a * rng.normal(size=n), -1, 1)
        sig[f"pink noise {a}"] = a * coloured(1.0)
        sig[f"brown noise {a}"] = a * coloured(2.0)
    for f in (50, 60, 80, 100, 120, 150, 180, 220, 262, 300, 440, 600, 880, 1000, 2000, 4000):
        sig[f"tone {f} Hz"] = 0.3 * np.sin(2 * np.pi * f * t)
    for f0 in (100, 150, 220):
        sig[f"harmonic tone {f0} Hz"] = 0.1 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 15))
    sig["chord C major"] = 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    sig["chord A minor"] = 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.6, 329.6))
    phase = 2 * np.pi * np.cumsum(np.repeat([262, 294, 330, 349, 392, 440], n // 6 + 1)[:n]) / SR
    sig["melody"] = 0.3 * np.sin(phase)
    sig["melody, harmonic"] = 0.1 * sum(np.sin(k * phase) / k for k in range(1, 10))
    sig["sweep 100-1900 Hz"] = 0.4 * np.sin(2 * np.pi * (100 * t + 300 * t**2))
    sig["square 220 Hz"] = 0.3 * np.sign(np.sin(2 * np.pi * 220 * t))
    sig["sawtooth 150 Hz"] = 0.3 * ((150 * t) % 1 * 2 - 1)
    sig["AM tone (4 Hz)"] = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    sig["AM noise (4 Hz)"] = 0.3 * rng.normal(size=n) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    sig["vibrato tone"] = 0.3 * np.sin(2 * np.pi * 220 * t + 3 * np.sin(2 * np.pi * 5 * t))
    sig["DTMF 1"] = 0.2 * (np.sin(2 * np.pi * 697 * t) + np.sin(2 * np.pi * 1209 * t))
    sig["ring tone"] = 0.2 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)) * ((t % 6) < 2)
    sig["clicks"] = np.where(np.arange(n) % 4000 < 20, 0.8, 0.0)
    return {k: np.asarray(v, np.float32) for k, v in sig.items()}


def calibration_section(model: Path) -> tuple[dict, pd.DataFrame]:
    card = read_card(model)
    ev = json.loads((model / "evaluation.json").read_text())
    labels = list(card["labels"])
    predictions = pd.DataFrame(ev["predictions"])
    report = calibrate_evaluation(predictions, labels)
    out = {
        "n": report.n,
        "speakers": report.n_speakers,
        "fitted_temperature": round(report.fitted_temperature, 4),
        "shipped_temperature": (card.get("calibration") or {}).get("temperature", 1.0),
        "ece_before": round(report.ece_before, 4),
        "ece_after_all_speakers": round(report.ece_after, 4),
        "cross_fitted_ece_before": round(report.cross_fitted_ece_before, 4),
        "cross_fitted_ece_after": round(report.cross_fitted_ece_after, 4),
        "folds": report.folds,
    }
    threshold = (card.get("decision") or {}).get("uncertain_below", 0.0)
    probs, y, _, _ = predictions_arrays(predictions, labels)
    cal = apply_temperature(probs, out["shipped_temperature"])
    effect = threshold_effect(cal.max(axis=1), cal.argmax(axis=1) == y, threshold)
    out["uncertain"] = {"card_threshold": threshold, **effect.as_dict()}
    return out, predictions


def speech_section(paths: list[str]) -> dict:
    missing, failed, no_speech, borderline = 0, [], [], 0
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        if not Path(path).is_file():
            missing += 1
            continue
        try:
            y = load_audio(path, sr=SR)
        except SERError as exc:
            failed.append([path, str(exc)])
            continue
        check = speech_check(y, sr=SR)
        borderline += check.peak_score < 0.5
        if not check.found:
            no_speech.append([path, round(check.peak_score, 3), round(check.variation, 2)])
        if (i + 1) % 250 == 0:
            print(f"  {i + 1}/{len(paths)} clips, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    checked = len(paths) - missing - len(failed)
    return {
        "clips": len(paths),
        "checked": checked,
        "missing": missing,
        "unreadable_or_silent": failed,
        "below_silero_0.5": int(borderline),
        "false_no_speech": no_speech,
        "false_no_speech_rate": round(len(no_speech) / checked, 4) if checked else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--limit", type=int, default=None, help="check only the first N held-out clips (default: all)")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args(argv)
    model = Path(args.model)

    calib, predictions = calibration_section(model)
    print(f"== calibration of {model.name} ({calib['n']} held-out clips, {calib['speakers']} speakers)")
    print(
        f"ECE before {calib['ece_before']:.4f}; after (T={calib['fitted_temperature']:.3f} fitted on all) "
        f"{calib['ece_after_all_speakers']:.4f}"
    )
    print(
        f"cross-fitted (fit on one half of the speakers, measured on the other): {calib['cross_fitted_ece_before']:.4f} "
        f"-> {calib['cross_fitted_ece_after']:.4f}"
    )
    for f in calib["folds"]:
        print(
            f"  fold {f['fold']}: {f['test_speakers']} speakers, {f['n_test']} clips: ECE {f['ece_before']:.4f} -> "
            f"{f['ece_after']:.4f} (T {f['temperature']:.3f}); threshold {f['threshold']}"
        )
    u = calib["uncertain"]
    print(
        f"== 'uncertain' below {u['card_threshold']}: coverage {u['coverage']:.1%}, accepted accuracy "
        f"{u['accepted_accuracy']:.1%} (all clips {u['overall_accuracy']:.1%})"
    )

    print("== no speech on generated signals")
    generated = {}
    for name, y in generated_signals().items():
        check = speech_check(y, sr=SR)
        generated[name] = {"no_speech": not check.found, "peak": round(check.peak_score, 3)}
    hits = sum(v["no_speech"] for v in generated.values())
    print(f"'no speech found' on {hits}/{len(generated)} generated signals ({hits / len(generated):.0%})")
    for name, v in generated.items():
        if not v["no_speech"]:
            print(f"  SPEECH? {name}: peak {v['peak']}")
    print(f"  highest Silero peak among them: {max(v['peak'] for v in generated.values()):.3f}")

    paths = list(predictions["path"])[: args.limit]
    print(f"== no speech on {len(paths)} held-out corpus clips")
    speech = speech_section(paths)
    print(
        f"checked {speech['checked']} (missing {speech['missing']}, unreadable/silent {len(speech['unreadable_or_silent'])}); "
        f"{speech['below_silero_0.5']} never reach Silero 0.5; false 'no speech found': {len(speech['false_no_speech'])} "
        f"({speech['false_no_speech_rate']}) in {speech['seconds']} s"
    )
    for row in speech["false_no_speech"]:
        print(f"  {row}")
    if args.json:
        Path(args.json).write_text(json.dumps({"calibration": calib, "generated": generated, "held_out": speech}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
