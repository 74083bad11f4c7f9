"""The call timeline: segmentation, smoothing, summary, offline vs streaming, bad input, the CLI."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from call_audio import SR, make_call, speechlike, tiny_bundle
from ser_lib.backbone import CHUNKS
from ser_lib.calls import (
    MONO_ROLE,
    StreamingAnalyzer,
    TimelineSettings,
    VADSettings,
    analyze_call,
    channel_roles,
    format_clock,
    parse_roles,
    plan_batch,
    replay,
    run_batch,
    segments_from_windows,
    sentiment,
    smooth_probabilities,
    summarize,
)
from ser_lib.config import EMOTIONS, SENTIMENT_WEIGHTS
from ser_lib.errors import EmptyAudioError, ParameterError, UnreadableAudioError
from ser_lib.progress import Progress

#: A 25 s call: the customer is angry in the second of their turns, everything else is neutral.
TURNS = [
    ("agent", "neutral", 0.5, 4.0),
    ("customer", "neutral", 5.2, 5.0),
    ("agent", "neutral", 10.8, 3.0),
    ("customer", "angry", 14.5, 6.0),
    ("agent", "neutral", 21.2, 3.0),
]
TOTAL_S = 25.0
#: Largest difference allowed between an offline and a streamed window probability (see the
#: package docstring of ser_lib.calls: the two chunk the encoder differently).
STREAM_TOLERANCE = 0.1


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.getbasetemp() / "tiny_call_model")


@pytest.fixture(scope="module")
def call() -> np.ndarray:
    return make_call(TURNS, total_s=TOTAL_S)


@pytest.fixture(scope="module")
def offline(bundle, call):
    return analyze_call(call, bundle=bundle, sr=SR)


# --- pure functions -------------------------------------------------------------------------------


def test_sentiment_uses_the_documented_weights():
    labels = list(EMOTIONS)
    eye = np.eye(len(labels))
    values = sentiment(eye, labels=labels)
    assert dict(zip(labels, values, strict=True)) == SENTIMENT_WEIGHTS
    assert values.min() == -1.0 and values.max() == 1.0
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(len(labels)), size=100)
    s = sentiment(p, labels=labels)
    assert np.all((s >= -1) & (s <= 1))


def test_roles_per_channel():
    assert channel_roles(1, ("agent", "customer")) == [MONO_ROLE]
    assert channel_roles(2, ("customer", "agent")) == ["customer", "agent"]
    assert channel_roles(3) == ["agent", "customer", "channel 3"]
    assert parse_roles(" customer , agent ") == ("customer", "agent")
    with pytest.raises(ParameterError, match="twice"):
        channel_roles(2, ("agent", "agent"))
    with pytest.raises(ParameterError, match="agent,customer"):
        parse_roles("agent")


def test_settings_are_validated():
    assert TimelineSettings(hop_s=0.5).chunk_s == CHUNKS.min_s  # never shorter than the encoder's shortest input
    assert TimelineSettings(hop_s=1.0, smooth=2).chunk_s == 3.0  # smooth + 1 hops
    with pytest.raises(ParameterError, match="window_s=2.55"):
        TimelineSettings(window_s=2.55)
    with pytest.raises(ParameterError, match="hop_s=4.0"):
        TimelineSettings(window_s=3.0, hop_s=4.0)
    with pytest.raises(ParameterError, match="smooth=9"):
        TimelineSettings(smooth=9)


def test_smoothing_outvotes_one_stray_window():
    raw = np.tile([0.8, 0.1, 0.1], (7, 1))
    raw[3] = [0.05, 0.9, 0.05]  # one window says class 1
    smoothed = smooth_probabilities(raw, radius=1)
    assert np.all(smoothed.argmax(axis=1) == 0)
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    np.testing.assert_allclose(smooth_probabilities(raw, radius=0), raw)


def _windows(starts, emotions, *, region=0, channel=1, role="customer", window=3.0, labels=("neutral", "angry")):
    rows = []
    for s, e in zip(starts, emotions, strict=True):
        p = {lab: (0.8 if lab == e else 0.2) for lab in labels}
        probabilities = {f"p_{k}": v for k, v in p.items()}
        where = {"channel": channel, "role": role, "region": region}
        rows.append({**where, "start_s": s, "end_s": s + window, "emotion": e, **probabilities})
    w = pd.DataFrame(rows)
    w["sentiment"] = sentiment(w[[f"p_{lab}" for lab in labels]].to_numpy(), labels=labels)
    return w


def test_segments_tile_the_region_and_absorb_short_runs():
    labels = ("neutral", "angry")
    starts = [10.0 + k for k in range(8)]  # region 10-20 s, windows of 3 s every second
    emotions = ["neutral", "neutral", "neutral", "angry", "neutral", "neutral", "angry", "angry"]
    w = _windows(starts, emotions, labels=labels)
    speech = pd.DataFrame([{"channel": 1, "role": "customer", "region": 0, "start_s": 10.0, "end_s": 20.0}])
    seg = segments_from_windows(w, speech, labels=labels, min_segment_s=1.5)
    assert seg["start_s"].iloc[0] == 10.0 and seg["end_s"].iloc[-1] == 20.0
    np.testing.assert_allclose(seg["start_s"].iloc[1:].to_numpy(), seg["end_s"].iloc[:-1].to_numpy())  # no gaps, no overlaps
    assert seg["emotion"].tolist() == ["neutral", "angry"]  # the 1 s angry run at 13 s was absorbed
    assert seg["start_s"].iloc[1] == pytest.approx(17.0)  # midway between the centres of windows 5 (16.5) and 6 (17.5)
    assert seg["windows"].sum() == len(w)
    assert seg.loc[1, "sentiment"] < -0.5 < seg.loc[0, "sentiment"]


def test_summary_quarters_trend_and_worst_moments():
    labels = ("neutral", "angry")
    segments = pd.DataFrame(
        [
            (1, "customer", 5.0, 20.0, "neutral", 0.8, -0.2, 10),
            (1, "customer", 70.0, 90.0, "angry", 0.9, -0.8, 12),
            (0, "agent", 30.0, 40.0, "neutral", 0.9, 0.0, 8),
        ],
        columns=["channel", "role", "start_s", "end_s", "emotion", "confidence", "sentiment", "windows"],
    )
    speech = segments[["channel", "role", "start_s", "end_s"]].assign(region=0, closed=True, judged=True)
    windows = _windows([5.0, 70.0, 80.0], ["neutral", "angry", "angry"], labels=labels)
    s = summarize(segments, windows, speech, duration_s=100.0, roles=["agent", "customer"], labels=labels)
    customer = s["parties"]["customer"]
    assert not s["no_speech"] and s["message"] == ""
    assert customer["dominant"] == "angry" and customer["shares"]["angry"] == pytest.approx(20 / 35, abs=1e-3)
    assert customer["mean_sentiment"] == pytest.approx((15 * -0.2 + 20 * -0.8) / 35, abs=1e-3)
    assert [q["dominant"] for q in customer["quarters"]] == ["neutral", None, "angry", "angry"]
    assert customer["trend"]["direction"] == "worsening" and customer["trend"]["change"] == pytest.approx(-0.6)
    assert s["parties"]["agent"]["trend"]["direction"] == "n/a"  # one quarter with speech
    assert [m["start_s"] for m in s["worst_moments"]] == [70.0]  # the -0.2 segment is not "worst"
    assert s["overall"]["judged_s"] == pytest.approx(45.0)


# --- a whole call -------------------------------------------------------------------------------------


def test_stereo_call_from_an_8khz_mulaw_file(bundle, call, tmp_path):
    path = tmp_path / "call.wav"
    import soxr

    sf.write(path, soxr.resample(call.T, SR, 8000), 8000, subtype="ULAW")
    result = analyze_call(path, bundle=bundle)
    seg = result.segments
    assert result.roles == ["agent", "customer"] and not result.no_speech
    assert set(seg["role"]) == {"agent", "customer"}
    for role, style, start, seconds in TURNS:  # every turn is found, on its party's channel, with its emotion
        inside = seg[(seg["role"] == role) & (seg["end_s"] > start + 0.5) & (seg["start_s"] < start + seconds - 0.5)]
        assert len(inside) and (inside["emotion"] == style).all(), (role, style, start, inside)
    for _, own in seg.groupby("role"):
        assert (own["start_s"].to_numpy()[1:] >= own["end_s"].to_numpy()[:-1] - 1e-9).all()  # no overlaps per party
    worst = result.summary["worst_moments"]
    assert worst and worst[0]["role"] == "customer" and 14.0 <= worst[0]["peak_s"] <= 20.5
    assert result.summary["parties"]["customer"]["trend"]["direction"] == "worsening"
    data = json.loads(result.to_json(tmp_path / "call.json"))
    first = data["segments"][0]
    assert set(first) >= {"channel", "role", "start_s", "end_s", "emotion", "confidence", "probabilities", "sentiment"}
    assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert data["summary"]["parties"]["agent"]["dominant"] == "neutral"
    result.to_csv(tmp_path / "call.csv")
    table = pd.read_csv(tmp_path / "call.csv")
    assert len(table) == len(seg) and "p_angry" in table


def test_roles_can_be_switched(bundle, call):
    result = analyze_call(call, bundle=bundle, sr=SR, roles=("customer", "agent"))
    angry = result.segments[result.segments["emotion"] == "angry"]
    assert set(angry["role"]) == {"agent"}  # the angry voice is on channel 1, now labelled agent


def test_mono_call_is_one_party(bundle, tmp_path):
    mono = make_call(TURNS, total_s=TOTAL_S, stereo=False)
    path = tmp_path / "mono.flac"
    sf.write(path, mono, SR)
    result = analyze_call(path, bundle=bundle)
    assert result.roles == [MONO_ROLE] and set(result.segments["role"]) == {MONO_ROLE}
    assert "angry" in set(result.segments["emotion"]) and "neutral" in set(result.segments["emotion"])


def test_progress_is_reported(bundle, call):
    seen: list[Progress] = []
    analyze_call(call[:, : 12 * SR], bundle=bundle, sr=SR, block_seconds=5.0, progress=seen.append)
    assert [(p.stage, p.done, p.total) for p in seen] == [
        ("analyse", 5.0, 12.0),
        ("analyse", 10.0, 12.0),
        ("analyse", 12.0, 12.0),
    ]
    assert seen[-1].fraction == 1.0


def test_format_clock():
    assert format_clock(75.3) == "01:15" and format_clock(3725) == "1:02:05" and format_clock(0) == "00:00"


# --- offline vs live ----------------------------------------------------------------------------------


def _stream(bundle, x, *, packet=320, **kwargs):
    analyzer = StreamingAnalyzer(bundle, sr=SR, channels=x.shape[0], **kwargs)
    for i in range(0, x.shape[1], packet):
        analyzer.feed(x[:, i : i + packet])
    analyzer.finish()
    return analyzer


def test_streaming_agrees_with_offline(bundle, call, offline):
    live = _stream(bundle, call).result()
    key = ["channel", "start_s", "end_s"]
    a, b = offline.windows.sort_values(key).reset_index(drop=True), live.windows.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key], b[key])  # the same windows (same VAD regions, same grid)
    assert (a["emotion"] == b["emotion"]).all()
    pcols = [f"p_{lab}" for lab in bundle.labels]
    assert np.abs(a[pcols].to_numpy() - b[pcols].to_numpy()).max() <= STREAM_TOLERANCE
    assert offline.segments["emotion"].tolist() == live.segments["emotion"].tolist()
    np.testing.assert_allclose(offline.segments["start_s"], live.segments["start_s"])


def test_streaming_with_complete_chunks_only_is_identical(bundle, call, offline):
    """Waiting for complete encoder chunks: 20 ms packets give exactly the offline result (one engine)."""
    live = _stream(bundle, call, grow=False).result()
    cols = ["channel", "start_s", "end_s", "emotion", *[f"p_{lab}" for lab in bundle.labels]]
    key = ["channel", "start_s"]
    pd.testing.assert_frame_equal(
        offline.windows[cols].sort_values(key).reset_index(drop=True),
        live.windows[cols].sort_values(key).reset_index(drop=True),
        atol=1e-6,
    )
    pd.testing.assert_frame_equal(offline.segments, live.segments, atol=1e-6)


def test_live_results_come_one_hop_after_their_audio(bundle, call):
    settings = TimelineSettings()
    analyzer = _stream(bundle, call, packet=SR // 50)
    w = analyzer.windows()
    latency = w["emitted_s"] - w["end_s"]
    grid = latency[w["end_s"] < w.groupby(["channel", "region"])["end_s"].transform("max") - settings.hop_s]
    assert (grid <= settings.hop_s + 0.06).all(), grid.max()  # one hop + a 32 ms VAD frame + a 20 ms packet
    assert (latency <= settings.hop_s + settings.vad.min_silence_s + 0.06).all()  # at the end of a turn: the VAD's pause


def test_int16_and_pcm_bytes_are_accepted(bundle, call):
    pcm = np.clip(call * 32767, -32768, 32767).astype(np.int16)
    a = StreamingAnalyzer(bundle, sr=SR, channels=2)
    b = StreamingAnalyzer(bundle, sr=SR, channels=2)
    for i in range(0, 6 * SR, 1600):
        a.feed(pcm[:, i : i + 1600])
        b.feed(pcm[:, i : i + 1600].T.tobytes())  # interleaved little-endian PCM
    np.testing.assert_allclose(a.windows().filter(like="p_"), b.windows().filter(like="p_"))
    with pytest.raises(ParameterError, match="2 channel"):
        a.feed(np.zeros((3, 100), np.float32))


def test_memory_stays_bounded_on_long_speech(bundle):
    """A 40 s monologue: the audio and frame buffers hold a few seconds, not the whole region."""
    y = speechlike(40.0, seed=5)
    analyzer = StreamingAnalyzer(bundle, sr=SR, channels=1, chunk_s=10.0, grow=False)
    track = analyzer._tracks[0]
    most_audio = most_frames = 0
    for i in range(0, len(y), SR):
        analyzer.feed(y[i : i + SR])
        most_audio = max(most_audio, len(track.buf))
        if track.region is not None and track.region.frames is not None:
            most_frames = max(most_frames, len(track.region.frames))
    analyzer.finish()
    assert most_audio <= 15 * SR  # one 10 s encoder chunk, its context and a second of slack
    assert most_frames <= (10 + 3 + 1) * 50
    assert len(analyzer.windows()) >= 35


def test_replay_paces_the_audio(bundle, call, tmp_path):
    path = tmp_path / "replay.wav"
    sf.write(path, call[:, : 8 * SR].T, SR)
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    updates = list(replay(path, bundle=bundle, speed=2.0, packet_s=0.5, clock=lambda: now[0], sleep=sleep))
    assert updates[-1].done and not any(u.done for u in updates[:-1])
    assert sum(slept) == pytest.approx(4.0, abs=0.05)  # 8 s of audio at twice real speed
    assert sum(len(u.new) for u in updates) == len(updates[-1].analyzer.windows())


# --- nothing to judge, and bad files -------------------------------------------------------------


def test_silence_is_no_speech_not_an_error(bundle, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((SR * 5, 2), np.float32), SR)
    result = analyze_call(path, bundle=bundle)
    assert result.no_speech and "No speech found" in result.message
    assert result.segments.empty and result.summary["worst_moments"] == []
    assert json.loads(result.to_json())["no_speech"] is True


def test_tones_are_no_speech(bundle, tmp_path):
    t = np.arange(6 * SR) / SR
    path = tmp_path / "tones.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0), SR)
    assert analyze_call(path, bundle=bundle).no_speech


def test_speech_too_short_to_judge_says_so(bundle):
    y = np.zeros(5 * SR, np.float32)
    y[SR : SR + SR // 2] = np.random.default_rng(0).uniform(-0.5, 0.5, SR // 2)  # a 0.5 s burst, 0.8 s padded
    result = analyze_call(y, bundle=bundle, sr=SR, settings=TimelineSettings(vad=VADSettings(detector="energy")))
    assert result.no_speech and "shorter than 1.0 s" in result.message
    assert len(result.speech) == 1 and not result.speech["judged"].any()


def test_bad_files_get_clear_errors(bundle, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="empty"):
        analyze_call(empty, bundle=bundle)
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros((0, 2), np.float32), SR)
    with pytest.raises(EmptyAudioError, match="holds no audio"):
        analyze_call(header_only, bundle=bundle)
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros((SR * 4, 2), np.float32) + 0.01, SR)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(UnreadableAudioError, match="truncated"):
        analyze_call(cut, bundle=bundle)
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 20)
    with pytest.raises(UnreadableAudioError, match="Supported formats"):
        analyze_call(text, bundle=bundle)
    aac = tmp_path / "call.m4a"
    aac.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    with pytest.raises(UnreadableAudioError, match="convert the file"):
        analyze_call(aac, bundle=bundle)
    with pytest.raises(UnreadableAudioError, match="does not exist"):
        analyze_call(tmp_path / "missing.wav", bundle=bundle)


# --- the command line ------------------------------------------------------------------------------


def _cli(argv):
    from ser_lib.cli.calls import add_call_commands

    parser = argparse.ArgumentParser(prog="ser_lib")
    add_call_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_analyze_call_writes_json_and_csv(bundle, call, tmp_path, capsys):
    path = tmp_path / "call.wav"
    sf.write(path, call.T, SR)
    outputs = ["--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv")]
    assert _cli(["analyze-call", str(path), "--model", str(bundle.path), *outputs]) == 0
    out = capsys.readouterr().out
    assert "customer" in out and "Strongest negative moments" in out
    data = json.loads((tmp_path / "o.json").read_text())
    assert {"segments", "summary"} <= set(data) and data["segments"][0]["role"] in ("agent", "customer")
    assert (tmp_path / "o.csv").read_text().startswith("channel,role,start_s,end_s,emotion")


def test_cli_realtime_prints_windows_as_they_come(bundle, call, tmp_path, capsys):
    path = tmp_path / "short.wav"
    sf.write(path, call[:, : 10 * SR].T, SR)
    live = ["--realtime", "--speed", "0", "--channels", "customer,agent"]
    assert _cli(["analyze-call", str(path), "--model", str(bundle.path), *live]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert lines and all(("customer:" in line) or ("agent:" in line) for line in lines)


def test_cli_analyze_calls_is_resumable(bundle, call, tmp_path, capsys):
    folder = tmp_path / "calls"
    folder.mkdir()
    sf.write(folder / "a.wav", call[:, : 10 * SR].T, SR)
    sf.write(folder / "b.flac", np.zeros((SR * 3, 2), np.float32), SR)
    (folder / "c.wav").write_text("broken")
    out = tmp_path / "results.csv"
    # exit 1: one input (c.wav) failed, the others were analysed
    assert _cli(["analyze-calls", str(folder), "--out", str(out), "--model", str(bundle.path), "--no-progress"]) == 1
    rows = list(csv.DictReader(out.open()))
    assert [(r["file"], r["role"]) for r in rows] == [
        ("a.wav", "agent"),
        ("a.wav", "customer"),
        ("b.flac", "agent"),
        ("b.flac", "customer"),
        ("c.wav", ""),
    ]
    assert rows[2]["no_speech"] == "True" and "Could not read" in rows[4]["error"]
    sf.write(folder / "d.wav", call[:, : 6 * SR].T, SR)
    assert _cli(["analyze-calls", str(folder), "--out", str(out), "--model", str(bundle.path), "--no-progress"]) == 0
    assert "1 call(s) (0 failed, 3 already done)" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert [r["file"] for r in rows].count("a.wav") == 2 and rows[-1]["file"] == "d.wav"
    with pytest.raises(ParameterError, match="not a folder"):
        _cli(["analyze-calls", str(tmp_path / "nope"), "--out", str(out)])


# --- batch: resuming and rewriting never leave a cut-off CSV -------------------------------------


def test_batch_retry_rewrites_the_csv_whole_and_reports_progress(bundle, call, tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    sf.write(folder / "a.wav", call[:, : 8 * SR].T, SR)
    (folder / "b.wav").write_text("broken")
    out = tmp_path / "results.csv"
    seen: list[Progress] = []
    first = run_batch(plan_batch(folder, out), bundle=bundle, progress=seen.append)
    assert (first.analysed, first.failed, first.skipped) == (2, 1, 0)
    assert [(p.stage, p.done, p.total, p.info["file"]) for p in seen] == [
        ("calls", 0, 2, "a.wav"),
        ("calls", 1, 2, "a.wav"),
        ("calls", 1, 2, "b.wav"),
        ("calls", 2, 2, "b.wav"),
    ]
    assert [p.info["failed"] for p in seen] == [0, 0, 0, 1]
    (folder / "b.wav").unlink()
    sf.write(folder / "b.wav", call[:, : 6 * SR].T, SR)  # fixed: --retry-errors analyses it again
    plan = plan_batch(folder, out, retry_errors=True)
    assert [p.name for p in plan.todo] == ["b.wav"]
    rows = list(csv.DictReader(out.open()))  # the error row is gone, the rest intact
    assert [(r["file"], r["role"]) for r in rows] == [("a.wav", "agent"), ("a.wav", "customer")]
    run_batch(plan, bundle=bundle)
    rows = list(csv.DictReader(out.open()))
    assert [r["file"] for r in rows] == ["a.wav", "a.wav", "b.wav", "b.wav"] and not any(r["error"] for r in rows)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def test_batch_drops_a_row_cut_off_by_an_older_run(bundle, call, tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(folder / name, call[:, : 6 * SR].T, SR)
    out = tmp_path / "results.csv"
    run_batch(plan_batch(folder, out), bundle=bundle)
    whole = out.read_text()
    out.write_text(whole[: whole.rindex("b.wav") + 8])  # stopped in the middle of b.wav's second row
    plan = plan_batch(folder, out)
    assert [p.name for p in plan.todo] == ["b.wav"]  # b.wav is analysed again, not half kept
    run_batch(plan, bundle=bundle)
    assert out.read_text() == whole


def test_batch_refuses_a_csv_of_something_else(tmp_path, call):
    folder = tmp_path / "calls"
    folder.mkdir()
    sf.write(folder / "a.wav", call[:, : 2 * SR].T, SR)
    other = tmp_path / "other.csv"
    other.write_text("name,value\nx,1\n")
    with pytest.raises(ParameterError, match="not an analyze-calls CSV"):
        plan_batch(folder, other)
    (folder / "a.wav").unlink()
    with pytest.raises(ParameterError, match="No audio files under"):
        plan_batch(folder, tmp_path / "new.csv")


def test_the_call_command_never_imports_tensorflow(bundle, call, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "call.wav"
    sf.write(path, call[:, : 8 * SR].T, SR)
    script = (
        "import sys; from ser_lib.cli import main; "
        f"code = main(['analyze-call', {str(path)!r}, '--model', {str(bundle.path)!r}, "
        f"'--quiet', '--json', {str(tmp_path / 'o.json')!r}]); "
        "print('tensorflow' in sys.modules, code)"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "False 0", done.stderr[-2000:]
    assert json.loads((tmp_path / "o.json").read_text())["segments"]
