"""Safe writes: every file the product writes is complete or not there; a killed writer leaves the
previous results intact or the new ones complete; names are claimed atomically; output paths are
checked before the work; the command line's exit codes and parameter checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import soundfile as sf

from ser_lib.errors import BundleError, ParameterError
from ser_lib.io import (
    RESERVATION,
    check_writable,
    check_writable_dir,
    release_folder,
    replace_dir,
    reserve_folder,
    write_json,
)

# --- atomic files and folders ------------------------------------------------------------------------


def test_write_json_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "result.json"
    write_json(target, {"a": 1})
    write_json(target, {"b": list(range(1000))})
    assert json.loads(target.read_text()) == {"b": list(range(1000))}
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_replace_dir_swaps_a_folder_whole(tmp_path):
    old, new = tmp_path / "bundle", tmp_path / "incoming"
    old.mkdir()
    (old / "a").write_text("old")
    new.mkdir()
    (new / "a").write_text("new")
    (new / "b").write_text("new")
    replace_dir(new, old)
    assert sorted(p.name for p in old.iterdir()) == ["a", "b"] and (old / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # the old one and the temporary are gone


_WRITER = textwrap.dedent(
    """
    import sys
    from ser_lib.io import write_json
    target, n = sys.argv[1], 0
    print("ready", flush=True)
    while True:  # write ever new, large versions until killed
        n += 1
        write_json(target, {"version": n, "rows": [[n, i, "x" * 20] for i in range(20000)]})
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45, 0.8])
def test_a_writer_killed_at_any_moment_leaves_a_complete_file(tmp_path, delay):
    target = tmp_path / "results.json"
    write_json(target, {"version": 0, "rows": []})
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    data = json.loads(target.read_text())  # complete: the previous version or a new one, never a torn file
    assert data["version"] == 0 or len(data["rows"]) == 20000


_BUNDLE_SAVER = textwrap.dedent(
    """
    import sys
    from ser_lib import models
    from ser_lib.bundle import ModelBundle
    from ser_lib.config import EMOTIONS
    from ser_lib.frontends import LogMelFrontEnd
    fe = LogMelFrontEnd()
    b = ModelBundle.create(models.logmel_cnn((fe.n_frames, fe.n_mels), len(EMOTIONS)), name="x",
                           model_type="logmel_cnn", labels=list(EMOTIONS), frontend=fe)
    print("ready", flush=True)
    b.save(sys.argv[1], overwrite=True)
    print("saved", flush=True)
    """
)


def test_a_bundle_save_killed_midway_leaves_the_previous_bundle_loadable(tmp_path):
    """Kill a process while it replaces a bundle (during the ONNX export or the swap): the folder
    then holds the old bundle complete, or the new one complete, and loads."""
    import shutil

    from ser_lib.bundle import ModelBundle
    from ser_lib.config import MODELS_DIR

    target = tmp_path / "mine"
    shutil.copytree(MODELS_DIR / "logmel-cnn-heldout", target)
    old_hash = json.loads((target / "card.json").read_text())["files"]["model.onnx"]
    outcomes = set()
    for delay in (0.5, 2.0):
        proc = subprocess.Popen([sys.executable, "-c", _BUNDLE_SAVER, str(target)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        loaded = ModelBundle.load(target)  # never half a bundle
        outcomes.add("old" if loaded.card["files"]["model.onnx"] == old_hash else "new")
    assert outcomes <= {"old", "new"}


def test_two_trainings_cannot_claim_one_name(tmp_path):
    folder = tmp_path / "models" / "mine"
    token = reserve_folder(folder)
    assert token in (folder / RESERVATION).read_text()
    with pytest.raises(BundleError, match="being written by another training right now"):
        reserve_folder(folder)
    release_folder(folder, "not-the-token")  # someone else's release leaves the claim alone
    assert (folder / RESERVATION).is_file()
    release_folder(folder, token)
    assert not folder.exists()
    reserve_folder(folder)  # free again


def test_a_claimed_folder_is_not_a_bundle_but_a_saved_one_is(tmp_path):
    from ser_lib.io import check_bundle_target, holds_bundle

    folder = tmp_path / "mine"
    reserve_folder(folder)
    assert not holds_bundle(folder)
    check_bundle_target(folder)  # our own claim does not block the save
    (folder / "card.json").write_text("{}")
    with pytest.raises(BundleError, match="already holds a bundle"):
        reserve_folder(folder)


def test_output_paths_are_checked_before_the_work(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper" / "out.json") == tmp_path / "new" / "deeper" / "out.json"
    with pytest.raises(ParameterError, match="is a folder: give a file name"):
        check_writable(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ParameterError, match="is a file, not a folder"):
        check_writable(blocker / "out.json")
    with pytest.raises(ParameterError, match="is a file, not a folder"):
        check_writable_dir(blocker)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ParameterError, match="not writable"):
            check_writable(locked / "out.json")


# --- the command line ----------------------------------------------------------------------------------


@pytest.fixture
def clip(tmp_path, synth):
    path = tmp_path / "clip.wav"
    sf.write(path, synth.voice(2.0, sr=16_000, f0=150), 16_000)
    return path


def _cli(*args, capsys):
    from ser_lib.cli import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze-call", "x.wav", "--window", "nan"], "not a finite number"),
        (["analyze-call", "x.wav", "--hop", "0"], "out of range"),
        (["analyze-call", "x.wav", "--hop", "-1"], "out of range"),
        (["analyze-call", "x.wav", "--speed", "-2"], "out of range"),
        (["analyze-call", "x.wav", "--window", "inf"], "not a finite number"),
        (["train", "--epochs", "0"], "out of range"),
        (["train", "--batch-size", "ten"], "not a whole number"),
        (["train", "--test-size", "1.5"], "out of range"),
        (["train", "--test-size", "0"], "out of range"),
    ],
)
def test_bad_parameters_exit_2_with_a_clear_message(args, message, capsys):
    code, _, err = _cli(*args, capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_an_unwritable_output_fails_before_any_work(clip, tmp_path, capsys):
    code, out, err = _cli("predict", str(clip), "--model", "models/logmel-cnn-heldout", "--json", str(tmp_path), capsys=capsys)
    assert code == 2 and "is a folder: give a file name" in err and "model:" not in out  # nothing was predicted
    code, out, err = _cli("analyze-call", str(clip), "--json", str(tmp_path), "--vad", "energy", capsys=capsys)
    assert code == 2 and "is a folder" in err
    (tmp_path / "f").write_text("x")
    code, out, err = _cli(
        "analyze-calls", str(tmp_path), "--out", str(tmp_path / "r.csv"), "--json-dir", str(tmp_path / "f"), capsys=capsys
    )
    assert code == 2 and "is a file, not a folder" in err
    code, out, err = _cli("train", "--metrics-from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"), capsys=capsys)
    assert code == 2 and "has no card.json" in err and not (tmp_path / "m").exists()


def test_exit_1_when_some_inputs_fail_and_0_when_all_are_done(clip, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file" * 10)
    code, out, _ = _cli("predict", str(clip), str(bad), "--model", "models/logmel-cnn-heldout", capsys=capsys)
    assert code == 1 and "bad.wav: ERROR" in out and "clip.wav: " in out
    code, _, _ = _cli("predict", str(clip), "--model", "models/logmel-cnn-heldout", capsys=capsys)
    assert code == 0


def test_exit_codes_are_documented_in_every_commands_help(capsys):
    from ser_lib.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("corpora", "train", "evaluate", "predict", "export-onnx", "analyze-call", "analyze-calls"):
        command = sub.choices[name]
        assert "Exit status: 0 all done; 1 some inputs failed" in command.format_help().replace("\n", " "), name


def test_a_training_claims_its_name_before_it_starts(tmp_path, capsys):
    folder = tmp_path / "mine"
    reserve_folder(folder)  # another training holds the name
    code, _, err = _cli("train", "--data", str(tmp_path / "nodata"), "--out", str(folder), capsys=capsys)
    assert code == 2 and "being written by another training" in err
    assert (folder / RESERVATION).is_file()  # the other run's claim is untouched
    release_folder(folder)
    code, _, err = _cli("train", "--data", str(tmp_path / "nodata"), "--out", str(folder), capsys=capsys)
    assert code == 2 and not folder.exists()  # a failed run gives its claim back
    assert Path(tmp_path).is_dir()


def test_two_dashboard_trainings_cannot_take_the_same_name(tmp_path):
    """Two users on the Training page asking for one name: the second is refused when it asks,
    before any training, and the first keeps its claim."""
    import pandas as pd

    from ser_lib.app.jobs import training_job
    from ser_lib.training import TrainConfig

    folder = tmp_path / "models" / "shared-name"
    manifest = pd.DataFrame({"path": [], "corpus": [], "speaker": [], "emotion": []})
    first = training_job(manifest, TrainConfig(model_type="notebook_cnn1d", epochs=1), save_to=folder)
    with pytest.raises(BundleError, match="being written by another training right now"):
        training_job(manifest, TrainConfig(model_type="notebook_cnn1d", epochs=1), save_to=folder)
    assert (folder / RESERVATION).is_file()
    first.start()
    assert first.join(120)
    assert first.snapshot().state == "failed"  # nothing to train on: it fails, and gives the name back
    assert not folder.exists()
