"""The call commands of the command line: ``analyze-call`` and ``analyze-calls``.

:func:`add_call_commands` registers them on the main parser's sub-parsers (see :mod:`ser_lib.cli`)::

    python -m ser_lib analyze-call call.wav --json call.json --csv call.csv
    python -m ser_lib analyze-call call.wav --channels customer,agent --realtime
    python -m ser_lib analyze-calls recordings/ --out results.csv
    python -m ser_lib analyze-calls /shared/calls --engine ray --address auto

``analyze-calls`` writes each call to the call store as it finishes (and, with ``--out``, one row
per call and party to a CSV rewritten atomically after each call) and skips the calls already
there, so an interrupted run continues where it stopped; ``--engine local`` (worker processes) or
``--engine ray`` (Ray actors, here or on a cluster) does the analysing. The work is done by
:mod:`ser_lib.calls` (:func:`~ser_lib.calls.analyze_call`, :func:`~ser_lib.calls.replay`,
:func:`~ser_lib.calls.plan_archive`, :func:`~ser_lib.calls.run_archive`, the engines of
:mod:`ser_lib.calls.pool` and :mod:`ser_lib.calls.ray_engine`);
this module parses the arguments, shows progress bars and prints. Every file it writes is written
atomically (a temporary file renamed over the target).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TextIO

from ..errors import ParameterError
from ..io import check_writable, check_writable_dir
from ..progress import Progress
from .common import EXIT_CODES_HELP, EXIT_OK, EXIT_SOME_FAILED, add_uncertain_below, number

logger = logging.getLogger(__name__)

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
    p.add_argument(
        "--window",
        type=number(float, low=0.5, high=30.0),
        default=3.0,
        metavar="S",
        help="window length in seconds (default 3.0)",
    )
    p.add_argument(
        "--hop",
        type=number(float, low=0.0, high=30.0, low_open=True),
        default=1.0,
        metavar="S",
        help="seconds between windows (default 1.0)",
    )
    p.add_argument(
        "--vad",
        choices=("silero", "energy"),
        default="silero",
        help="speech detector: silero (default) or energy (anything louder than -40 dBFS; for synthetic test audio)",
    )
    add_uncertain_below(p, says="show 'uncertain' for windows and segments")


def add_call_commands(subparsers) -> None:
    """Register ``analyze-call`` and ``analyze-calls`` on ``subparsers`` (from ``add_subparsers``)."""
    a = subparsers.add_parser(
        "analyze-call",
        help="emotion over one call recording, per party (stereo: one party per channel)",
        description="Analyse one call of any length (WAV PCM or mu-law at 8-48 kHz, FLAC, Ogg/Opus, MP3), streamed "
        "from disk so memory stays flat. Prints a summary per party (dominant emotion, mean sentiment, trend, "
        "per quarter) and the strongest negative moments. " + _SETTINGS_HELP,
        epilog="The JSON holds 'segments' (channel, role, start_s, end_s, emotion, confidence, probabilities, "
        "sentiment) and 'summary'. Output paths are checked before the analysis starts. " + EXIT_CODES_HELP,
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
    a.add_argument(
        "--speed",
        type=number(float, low=0.0, high=1000.0),
        default=1.0,
        metavar="X",
        help="with --realtime: X times real speed (default 1.0; 0 = as fast as possible)",
    )
    a.add_argument("--quiet", action="store_true", help="print no summary (only what --json/--csv write)")
    from .store import add_call_store_options

    add_call_store_options(a)  # --store, --no-store, --call-id, --metadata, --name-pattern
    a.set_defaults(func=cmd_analyze_call)

    b = subparsers.add_parser(
        "analyze-calls",
        help="analyse every call in an archive folder into the call store (and a CSV), resumably, here or on Ray",
        description="Analyse every audio file under ARCHIVE and write each call's analysis to the call store (--store) "
        "as it finishes, with a progress bar; with --out, also one row per call and party to a CSV. Calls the store "
        "already holds for this model (and, with --out, the CSV too) are skipped, so an interrupted run resumes where "
        "it stopped; calls that fail are recorded with their reason and the run goes on. --engine local (default) "
        "analyses in --workers processes on this machine; --engine ray on Ray actors, here or on a cluster "
        "(--address), where the archive and the model must be at the same path on every node. " + _SETTINGS_HELP,
        epilog="A call's id in the store is its path relative to ARCHIVE. Metadata (agent, queue, started_at, "
        "customer, any other column) comes from ARCHIVE/calls.csv or --metadata (column 'file' names the recording "
        "relative to ARCHIVE), or from file names with --name-pattern. " + EXIT_CODES_HELP,
    )
    b.add_argument("folder", metavar="ARCHIVE", help="folder of call recordings (searched recursively)")
    b.add_argument("--out", metavar="CSV", help="also a results CSV, one row per call and party: created, or continued")
    b.add_argument(
        "--store", metavar="PATH", help="the call store (DuckDB file; default $SER_CALL_STORE, then data/calls.duckdb)"
    )
    _add_common(b)
    b.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: processes on this machine (default); ray: Ray actors (pip install -r requirements-cluster.txt)",
    )
    b.add_argument(
        "--workers",
        type=number(int, low=1, high=4096),
        metavar="N",
        help="analyses at once, each with its own loaded model (local default 1; ray default one per CPU of the cluster)",
    )
    b.add_argument(
        "--address",
        metavar="ADDR",
        help="with --engine ray: 'auto' joins the cluster this machine runs (ray start), ray://HOST:10001 connects "
        "through Ray Client; default: start Ray on this machine for this run",
    )
    b.add_argument("--metadata", metavar="CSV", help="call metadata CSV (default ARCHIVE/calls.csv when it exists)")
    b.add_argument(
        "--name-pattern",
        metavar="REGEX",
        help="metadata from file names: a regex with named groups agent, queue, started_at, customer, e.g. "
        r"'(?P<queue>[^_]+)_(?P<agent>[^_]+)_(?P<started_at>\d{8}T\d{6})'",
    )
    b.add_argument(
        "--json-dir", metavar="DIR", help="also write each call's full analysis (segments and summary) as DIR/<file>.json"
    )
    b.add_argument("--retry-errors", action="store_true", help="analyse again the calls whose earlier analysis failed")
    b.add_argument("--limit", type=number(int, low=1), metavar="N", help="analyse at most N calls in this run")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_analyze_calls)


# --- helpers ------------------------------------------------------------------------------------------


def _settings(args):
    """The :class:`~ser_lib.calls.TimelineSettings` of ``--window``, ``--hop`` and ``--vad``."""
    from ..calls import TimelineSettings, VADSettings

    return TimelineSettings(window_s=args.window, hop_s=args.hop, vad=VADSettings(detector=args.vad))


def _load(args):
    """The bundle of ``--model`` (default ``$SER_MODEL``, then ``models/default``)."""
    from ..bundle import ModelBundle
    from ..decisions import uncertain_below

    bundle = ModelBundle.load(args.model)
    bundle.uncertain_below = uncertain_below(bundle.card, override=getattr(args, "uncertain_below", None))
    return bundle


def print_summary(result, *, out: TextIO | None = None) -> None:
    """A short human-readable report of a :class:`~ser_lib.calls.CallAnalysis` (to stdout by default)."""
    from ..calls import format_clock

    out = out or sys.stdout
    s = result.summary
    kind = "mono" if len(result.roles) == 1 else f"{len(result.roles)} channels"
    print(
        f"{result.source}: {format_clock(result.duration_s)} ({kind}: {', '.join(result.roles)}); model {result.model}", file=out
    )
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
        speech = f"speech {format_clock(p['speech_s'])} ({100 * (p['talk_share'] or 0):.0f}%)"
        mostly = f"mostly {p['dominant']} ({100 * p['shares'][p['dominant']]:.0f}%"
        mostly += f", {p['uncertain_share']:.0%} uncertain)" if p.get("uncertain_share") else ")"
        print(
            f"  {role:<{width}}  {speech}, {mostly}, mean sentiment {p['mean_sentiment']:+.2f}, "
            f"trend {trend['direction']}{change}",
            file=out,
        )
        quarters = "  ".join(
            f"Q{q['quarter']} {q['dominant'] or '-'} {q['mean_sentiment']:+.2f}"
            if q["mean_sentiment"] is not None
            else f"Q{q['quarter']} -"
            for q in p["quarters"]
        )
        print(f"  {'':<{width}}  {quarters}", file=out)
    worst = s["worst_moments"]
    if worst:
        print("Strongest negative moments:", file=out)
        for i, m in enumerate(worst, 1):
            print(
                f"  {i}. {format_clock(m['start_s'])}-{format_clock(m['end_s'])} {m['role']}: "
                f"{'uncertain, most likely ' if m.get('uncertain') else ''}{m['emotion']} "
                f"(confidence {m['confidence']:.2f}), sentiment {m['sentiment']:+.2f}",
                file=out,
            )
    else:
        print("No strongly negative moments.", file=out)


def _window_line(w) -> str:
    """One line for a window result of ``--realtime``: when it was final, party, time, emotion."""
    from ..calls import format_clock

    return (
        f"[{format_clock(w.emitted_s)}] {w.role}: {format_clock(w.start_s)}-{format_clock(w.end_s)} "
        f"{w.verdict} {w.confidence:.2f} sentiment {w.sentiment:+.2f} valence {w.valence:+.2f} arousal {w.arousal:+.2f}"
    )


# --- commands ----------------------------------------------------------------------------------------


def _analyze_one(args, *, bundle, roles, settings):
    """``analyze-call``'s analysis: offline with a progress bar, or ``--realtime`` printing each window."""
    from ..calls import analyze_call, replay

    if args.realtime:
        result = None
        for update in replay(args.file, bundle=bundle, roles=roles, speed=args.speed or None, settings=settings):
            for w in update.new:
                print(_window_line(w), flush=True)
            if update.done:
                result = update.analyzer.result(source=Path(args.file).name)
    else:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=None,
            unit="s",
            desc="analysing",
            disable=args.quiet or not sys.stderr.isatty(),
            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s",
        )

        def progress(p: Progress) -> None:
            bar.total = round(p.total)
            bar.n = round(p.done)
            bar.refresh()

        try:
            result = analyze_call(args.file, bundle=bundle, roles=roles, settings=settings, progress=progress)
        finally:
            bar.close()
    return result


def cmd_analyze_call(args) -> int:
    """``analyze-call``: one recording, offline with a progress bar or ``--realtime``; summary, JSON, CSV, store."""
    from ..calls import parse_roles

    roles = parse_roles(args.channels)
    settings = _settings(args)
    for what, path in (("--json", args.json), ("--csv", args.csv)):
        if path:
            check_writable(path, what=what)  # before the work, so a long analysis is never lost at the end
    from ..errors import SERError
    from .store import call_store_target, store_call, store_failure

    target = call_store_target(args, args.file)  # the store opens (and the metadata reads) before the work, too
    bundle = _load(args)
    try:
        result = _analyze_one(args, bundle=bundle, roles=roles, settings=settings)
    except SERError as exc:
        if target is not None:
            store_failure(target, exc, bundle, file=args.file)
        raise
    stored = store_call(target, result, bundle, file=args.file) if target is not None else None
    if args.json:
        result.to_json(args.json)  # atomic: a temporary file renamed over the target
        logger.info("wrote %s", args.json)
    if args.csv:
        result.to_csv(args.csv)  # atomic, as the JSON
        logger.info("wrote %s", args.csv)
    if not args.quiet:
        print_summary(result)
        for what, path in (("JSON", args.json), ("CSV", args.csv)):
            if path:
                print(f"wrote {what} to {path}")
        if stored:
            print(f"stored as {stored} in {target[0].path}")
    return 0


def cmd_analyze_calls(args) -> int:
    """``analyze-calls``: every recording under a folder into the call store (and a CSV), on an engine.

    See :func:`ser_lib.calls.plan_archive` and :func:`ser_lib.calls.run_archive`; the engines are
    :func:`ser_lib.calls.pool.analyse_local` and :func:`ser_lib.calls.ray_engine.analyse_on_ray`.
    """
    from tqdm.auto import tqdm

    from ..calls import parse_roles, plan_archive, run_archive
    from ..calls.pool import AnalysisSpec, analyse_local, jobs_for
    from ..store import CallStore, compile_name_pattern, model_identity

    roles = parse_roles(args.channels)
    settings = _settings(args)
    if args.address and args.engine != "ray":
        raise ParameterError(f"--address {args.address} is for --engine ray: add --engine ray, or drop --address")
    if args.engine == "ray":
        from ..calls.ray_engine import import_ray

        import_ray()  # not installed: say how to install it, before any work
    if args.out:
        check_writable(args.out, what="--out")
    if args.json_dir:
        check_writable_dir(args.json_dir, what="--json-dir")
    pattern = compile_name_pattern(args.name_pattern) if args.name_pattern else None  # a bad regex stops here
    store = CallStore(args.store)
    with store.writer():  # created (or migrated) now: a store that cannot be written stops the run before any work
        pass
    bundle = _load(args)
    model_name, sha = model_identity(bundle)
    plan = plan_archive(args.folder, store=store, model_sha256=sha, out=args.out, retry_errors=args.retry_errors)
    where = " and ".join(str(p) for p in (store.path, plan.csv.out if plan.csv else None) if p)
    if not plan.todo:
        print(f"All {len(plan.files)} calls under {plan.root} are already in {where}.")
        return EXIT_OK
    metadata = _metadata_lookup(args.metadata, pattern, plan.root)
    todo = plan.todo[: args.limit] if args.limit else plan.todo
    jobs = jobs_for(todo, plan.root)
    spec = AnalysisSpec(
        model=str(bundle.path),
        roles=tuple(roles) if roles else None,
        settings=settings,
        uncertain_below=bundle.uncertain_below,  # resolved here: the workers may not see this environment
    )
    if args.engine == "ray":
        from ..calls.ray_engine import analyse_on_ray

        outcomes = analyse_on_ray(jobs, spec=spec, workers=args.workers, address=args.address)
    else:
        outcomes = analyse_local(jobs, spec=spec, workers=args.workers or 1, bundle=bundle)
    bar = tqdm(total=len(plan.files), initial=plan.skipped, unit="call", desc="calls", disable=args.no_progress)

    def progress(p: Progress) -> None:
        bar.set_postfix_str(p.info.get("file", "")[-40:], refresh=False)
        bar.n = int(p.done)
        bar.refresh()

    try:
        done = run_archive(
            plan,
            outcomes,
            store=store,
            model_name=model_name,
            model_sha256=sha,
            labels=bundle.labels,
            metadata=metadata,
            json_dir=args.json_dir,
            progress=progress,
        )
    finally:
        outcomes.close()  # stops the workers, also when interrupted
        bar.close()
    print(
        f"Analysed {done.analysed} call(s) ({done.failed} failed, {done.skipped} already done) -> {where}"
        + (
            "; failures are recorded with their reason (rerun with --retry-errors to try them again)"
            if done.failed
            else ""
        )
    )
    return EXIT_SOME_FAILED if done.failed else EXIT_OK


def _metadata_lookup(csv_path: str | None, pattern, root: Path):
    """``call_id -> CallMetadata or None`` from ``--metadata`` (or ARCHIVE/calls.csv) and ``--name-pattern``, or None."""
    from ..store import metadata_from_name, read_metadata_csv

    path = Path(csv_path) if csv_path else root / "calls.csv"
    table = read_metadata_csv(path) if csv_path or path.is_file() else {}
    if not table and pattern is None:
        return None

    def lookup(call_id: str):
        return table.get(call_id) or (metadata_from_name(call_id, pattern) if pattern is not None else None)

    return lookup
