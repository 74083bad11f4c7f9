"""The call commands of the command line: ``analyze-call`` and ``analyze-calls``.

:func:`add_call_commands` registers them on the main parser's sub-parsers (see :mod:`ser_lib.cli`)::

    python -m ser_lib analyze-call call.wav --json call.json --csv call.csv
    python -m ser_lib analyze-call call.wav --channels customer,agent --realtime
    python -m ser_lib analyze-calls recordings/ --out results.csv

``analyze-calls`` appends one row per call and party to its CSV as it goes and skips the files
already in it, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from ..config import AUDIO_EXTENSIONS
from ..errors import ParameterError, SERError

logger = logging.getLogger(__name__)

#: Columns of the ``analyze-calls`` CSV (then one ``share_<emotion>`` column per emotion).
BATCH_COLUMNS: tuple[str, ...] = (
    "file",
    "role",
    "duration_s",
    "speech_s",
    "judged_s",
    "dominant",
    "mean_sentiment",
    "trend",
    "sentiment_change",
    "worst_start_s",
    "worst_emotion",
    "worst_sentiment",
    "no_speech",
    "error",
)

_SETTINGS_HELP = (
    "Speech is found with the Silero voice-activity detector; within speech, windows of --window seconds every "
    "--hop seconds are scored, smoothed (median over neighbours) and joined into segments of one emotion. "
    "Sentiment in [-1, 1] is the probability-weighted sum of per-emotion weights: happy +1, calm and surprise +0.25, "
    "neutral 0, sad and fear -0.75, angry and disgust -1."
)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="PATH", help="model bundle folder (default: $SER_MODEL, then models/default)")
    p.add_argument(
        "--channels",
        default="agent,customer",
        metavar="ROLES",
        help="parties of a stereo recording in channel order, comma-separated (default agent,customer: left is the "
        "agent, right the customer; use customer,agent to swap). A mono recording is one party, 'speaker'.",
    )
    p.add_argument("--window", type=float, default=3.0, metavar="S", help="window length in seconds (default 3.0)")
    p.add_argument("--hop", type=float, default=1.0, metavar="S", help="seconds between windows (default 1.0)")
    p.add_argument(
        "--vad",
        choices=("silero", "energy"),
        default="silero",
        help="speech detector: silero (default) or energy (anything louder than -40 dBFS; for synthetic test audio)",
    )


def add_call_commands(subparsers) -> None:
    """Register ``analyze-call`` and ``analyze-calls`` on ``subparsers`` (from ``add_subparsers``)."""
    a = subparsers.add_parser(
        "analyze-call",
        help="emotion over one call recording, per party (stereo: one party per channel)",
        description="Analyse one call of any length (WAV PCM or mu-law at 8-48 kHz, FLAC, Ogg/Opus, MP3), streamed "
        "from disk so memory stays flat. Prints a summary per party (dominant emotion, mean sentiment, trend, "
        "per quarter) and the strongest negative moments. " + _SETTINGS_HELP,
        epilog="The JSON holds 'segments' (channel, role, start_s, end_s, emotion, confidence, probabilities, "
        "sentiment) and 'summary'. Exit status 2 with a one-line reason for an unreadable, truncated, empty or "
        "unsupported file.",
    )
    a.add_argument("file", metavar="FILE", help="the call recording")
    _add_common(a)
    a.add_argument("--json", metavar="OUT", help="write segments and summary as JSON to OUT")
    a.add_argument("--csv", metavar="OUT", help="write the segments as CSV to OUT (one p_<emotion> column per emotion)")
    a.add_argument(
        "--realtime",
        action="store_true",
        help="read the file at real speed, as if the call were live, and print each window's result the moment it "
        "is final (one hop after its audio)",
    )
    a.add_argument("--speed", type=float, default=1.0, metavar="X", help="with --realtime: X times real speed (default 1.0; 0 = as fast as possible)")
    a.add_argument("--quiet", action="store_true", help="print no summary (only what --json/--csv write)")
    a.set_defaults(func=cmd_analyze_call)

    b = subparsers.add_parser(
        "analyze-calls",
        help="analyse every call in a folder into one CSV, resumably",
        description="Analyse every audio file under DIR and append one row per call and party to --out, with a "
        "progress bar. Files already in --out are skipped, so an interrupted run resumes where it stopped; files "
        "that fail get their reason in the 'error' column and the run goes on. " + _SETTINGS_HELP,
    )
    b.add_argument("folder", metavar="DIR", help="folder of call recordings (searched recursively)")
    b.add_argument("--out", required=True, metavar="CSV", help="results CSV: created, or continued if it exists")
    _add_common(b)
    b.add_argument("--json-dir", metavar="DIR", help="also write each call's full analysis (segments and summary) as DIR/<file>.json")
    b.add_argument("--retry-errors", action="store_true", help="analyse again the files whose earlier row has an error")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_analyze_calls)


# --- helpers ------------------------------------------------------------------------------------------


def _settings(args):
    from ..calls.timeline import TimelineSettings
    from ..calls.vad import VADSettings

    return TimelineSettings(window_s=args.window, hop_s=args.hop, vad=VADSettings(detector=args.vad))


def _load(args):
    """The bundle for call analysis: an encoder head runs in NumPy, so TensorFlow is never imported
    (460 MB less memory and 5 s less start-up); other models load through Keras."""
    from ..head_numpy import load_for_calls

    return load_for_calls(args.model)


def print_summary(result, *, out: TextIO | None = None) -> None:
    """A short human-readable report of a :class:`~ser_lib.timeline.CallAnalysis` (to stdout by default)."""
    from ..app.plots_timeline import format_clock

    out = out or sys.stdout
    s = result.summary
    kind = "mono" if len(result.roles) == 1 else f"{len(result.roles)} channels"
    print(f"{result.source}: {format_clock(result.duration_s)} ({kind}: {', '.join(result.roles)}); model {result.model}", file=out)
    if result.no_speech:
        print(result.message, file=out)
        return
    width = max(len(r) for r in result.roles)
    for role, p in s["parties"].items():
        if p["dominant"] is None:
            print(f"  {role:<{width}}  speech {format_clock(p['speech_s'])}, nothing long enough to judge", file=out)
            continue
        trend = p["trend"]
        change = f" ({trend['change']:+.2f})" if trend.get("change") is not None else ""
        print(
            f"  {role:<{width}}  speech {format_clock(p['speech_s'])} ({100 * (p['talk_share'] or 0):.0f}%), mostly {p['dominant']} "
            f"({100 * p['shares'][p['dominant']]:.0f}%), mean sentiment {p['mean_sentiment']:+.2f}, trend {trend['direction']}{change}",
            file=out,
        )
        quarters = "  ".join(
            f"Q{q['quarter']} {q['dominant'] or '-'} {q['mean_sentiment']:+.2f}" if q["mean_sentiment"] is not None else f"Q{q['quarter']} -"
            for q in p["quarters"]
        )
        print(f"  {'':<{width}}  {quarters}", file=out)
    worst = s["worst_moments"]
    if worst:
        print("Strongest negative moments:", file=out)
        for i, m in enumerate(worst, 1):
            print(
                f"  {i}. {format_clock(m['start_s'])}-{format_clock(m['end_s'])} {m['role']}: {m['emotion']} "
                f"(confidence {m['confidence']:.2f}), sentiment {m['sentiment']:+.2f}",
                file=out,
            )
    else:
        print("No strongly negative moments.", file=out)


def _window_line(w) -> str:
    from ..app.plots_timeline import format_clock

    return (
        f"[{format_clock(w.emitted_s)}] {w.role}: {format_clock(w.start_s)}-{format_clock(w.end_s)} "
        f"{w.emotion} {w.confidence:.2f} sentiment {w.sentiment:+.2f}"
    )


# --- commands ----------------------------------------------------------------------------------------


def cmd_analyze_call(args) -> int:
    from ..calls.timeline import analyze_call, parse_roles, replay

    roles = parse_roles(args.channels)
    settings = _settings(args)
    if args.speed is not None and args.speed < 0:
        raise ParameterError(f"--speed {args.speed} must be positive (1 = real time) or 0 for as fast as possible")
    bundle = _load(args)
    if args.realtime:
        result = None
        for update in replay(args.file, bundle=bundle, roles=roles, speed=args.speed or None, settings=settings):
            for w in update.new:
                print(_window_line(w), flush=True)
            if update.done:
                result = update.analyzer.result(source=Path(args.file).name)
    else:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, unit="s", desc="analysing", disable=args.quiet or not sys.stderr.isatty(), bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s")

        def progress(done: float, total: float) -> None:
            bar.total = round(total)
            bar.n = round(done)
            bar.refresh()

        try:
            result = analyze_call(args.file, bundle=bundle, roles=roles, settings=settings, progress=progress)
        finally:
            bar.close()
    if args.json:
        result.to_json(args.json)
        logger.info("wrote %s", args.json)
    if args.csv:
        result.to_csv(args.csv)
        logger.info("wrote %s", args.csv)
    if not args.quiet:
        print_summary(result)
        for what, path in (("JSON", args.json), ("CSV", args.csv)):
            if path:
                print(f"wrote {what} to {path}")
    return 0


def find_calls(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` (recursively, sorted), by extension."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ParameterError(f"{root} is not a folder: pass the folder holding the call recordings")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise ParameterError(f"No audio files under {root}: expected recordings ending in {', '.join(AUDIO_EXTENSIONS)}")
    return files


def batch_rows(name: str, result=None, *, error: str = "", labels=None) -> list[dict]:
    """The ``analyze-calls`` rows of one call: one per party, or one row with the error."""
    if result is None:
        return [{"file": name, "error": error}]
    rows = []
    for role, p in result.summary["parties"].items():
        worst = [m for m in result.summary["worst_moments"] if m["role"] == role]
        row = {
            "file": name,
            "role": role,
            "duration_s": round(result.duration_s, 2),
            "speech_s": p["speech_s"],
            "judged_s": p["judged_s"],
            "dominant": p["dominant"] or "",
            "mean_sentiment": "" if p["mean_sentiment"] is None else p["mean_sentiment"],
            "trend": p["trend"]["direction"],
            "sentiment_change": "" if p["trend"].get("change") is None else p["trend"]["change"],
            "worst_start_s": worst[0]["start_s"] if worst else "",
            "worst_emotion": worst[0]["emotion"] if worst else "",
            "worst_sentiment": worst[0]["sentiment"] if worst else "",
            "no_speech": result.no_speech,
            "error": "",
        }
        row.update({f"share_{lab}": v for lab, v in p["shares"].items()})
        rows.append(row)
    return rows


def _done_files(out: Path, *, retry_errors: bool) -> tuple[set[str], list[str] | None]:
    """Files already in ``out`` (and its header); with ``retry_errors`` the failed ones are removed from it."""
    if not out.is_file() or out.stat().st_size == 0:
        return set(), None
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = list(reader)
    if not header or "file" not in header:
        raise ParameterError(f"{out} exists but is not an analyze-calls CSV (no 'file' column): choose another --out")
    if retry_errors:
        kept = [r for r in rows if not r.get("error")]
        if len(kept) != len(rows):
            with open(out, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=header)
                w.writeheader()
                w.writerows(kept)
        rows = kept
    return {r["file"] for r in rows}, list(header)


def cmd_analyze_calls(args) -> int:
    from tqdm.auto import tqdm

    from ..config import EMOTIONS
    from ..calls.timeline import analyze_call, parse_roles

    roles = parse_roles(args.channels)
    settings = _settings(args)
    root = Path(args.folder).expanduser()
    files = find_calls(root)
    out = Path(args.out).expanduser()
    done, header = _done_files(out, retry_errors=args.retry_errors)
    todo = [p for p in files if p.relative_to(root).as_posix() not in done]
    skipped = len(files) - len(todo)
    if not todo:
        print(f"All {len(files)} calls under {root} are already in {out}.")
        return 0
    bundle = _load(args)
    labels = list(bundle.labels)
    fields = header or [*BATCH_COLUMNS, *[f"share_{lab}" for lab in labels or EMOTIONS]]
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    with open(out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if header is None:
            writer.writeheader()
        bar = tqdm(total=len(files), initial=skipped, unit="call", desc="calls", disable=args.no_progress)
        for path in todo:
            name = path.relative_to(root).as_posix()
            bar.set_postfix_str(name[-40:])
            try:
                result = analyze_call(path, bundle=bundle, roles=roles, settings=settings)
                rows = batch_rows(name, result)
                if args.json_dir:
                    result.to_json(Path(args.json_dir) / (name + ".json"))
            except SERError as exc:
                failed += 1
                logger.warning("%s: %s", name, exc)
                rows = batch_rows(name, error=str(exc))
            writer.writerows(rows)
            f.flush()
            bar.update(1)
        bar.close()
    print(
        f"Analysed {len(todo)} call(s) ({failed} failed, {skipped} already done) -> {out}"
        + ("; failures have their reason in the 'error' column (rerun with --retry-errors to try them again)" if failed else "")
    )
    return 0
