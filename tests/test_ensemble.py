"""Combined bundles (ser_lib.ensemble, ``python -m ser_lib combine``): the log-linear average of
members' probabilities, in NumPy, in the saved ONNX network, and in the held-out figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ser_lib.bundle import ModelBundle
from ser_lib.cli import main
from ser_lib.config import EMOTIONS
from ser_lib.ensemble import combine_predictions, combine_probabilities, read_predictions
from ser_lib.errors import BundleError, ParameterError
from ser_lib.frontends import EncoderFrontEnd

LABELS = list(EMOTIONS)


def test_equal_weights_give_the_renormalised_geometric_mean():
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    b = np.array([[0.5, 0.5], [0.6, 0.4]])
    got = combine_probabilities([a, b])
    g = np.sqrt(a * b)
    np.testing.assert_allclose(got, g / g.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


def test_weights_pull_towards_a_member_and_a_zero_weight_ignores_it():
    a = np.array([[0.7, 0.2, 0.1]])
    b = np.array([[0.1, 0.2, 0.7]])
    np.testing.assert_allclose(combine_probabilities([a, b], [1.0, 0.0]), a, atol=1e-12)
    leaning = combine_probabilities([a, b], [3, 1])  # normalised to 0.75 / 0.25
    assert leaning[0].argmax() == 0 and leaning[0, 0] < 0.7


def test_a_class_one_member_rules_out_stays_unlikely():
    """Unlike an arithmetic mean (0.45 here), the product keeps a vetoed class low."""
    a = np.array([[0.9, 0.05, 0.05]])
    b = np.array([[0.001, 0.5, 0.499]])
    assert combine_probabilities([a, b])[0, 0] < 0.1


@pytest.mark.parametrize(
    "probs, weights, message",
    [
        ([np.ones((1, 2)) / 2], None, "at least two members"),
        ([np.ones((1, 2)) / 2] * 2, [1.0], "one weight per member"),
        ([np.ones((1, 2)) / 2] * 2, [1.0, -1.0], "non-negative"),
        ([np.ones((1, 2)) / 2, np.ones((1, 3)) / 3], None, "differ in shape"),
    ],
)
def test_bad_members_or_weights_are_refused_with_the_reason(probs, weights, message):
    with pytest.raises(ParameterError, match=message):
        combine_probabilities(probs, weights)


def _table(paths, emotions, probs, corpus="X"):
    t = pd.DataFrame({"path": paths, "corpus": corpus, "speaker": "s1", "emotion": emotions})
    for k, lab in enumerate(LABELS[: probs.shape[1]]):
        t[f"p_{lab}"] = probs[:, k]
    return t


def test_predictions_are_matched_by_file_across_working_folders():
    labels = LABELS[:2]
    a = _table(
        ["../shared/corpora/c/s/one.opus", "../shared/corpora/c/s/two.opus"],
        ["neutral", "calm"],
        np.array([[0.9, 0.1], [0.4, 0.6]]),
    )
    b = _table(
        ["/work/shared/corpora/c/s/two.opus", "/work/shared/corpora/c/s/one.opus", "/x/c/s/three.opus"],
        ["calm", "neutral", "calm"],
        np.array([[0.2, 0.8], [0.5, 0.5], [0.1, 0.9]]),
    )
    out = combine_predictions([a, b], labels)
    assert list(out["path"]) == list(a["path"])  # the first table's files and order; three.opus only in b
    np.testing.assert_allclose(
        out[["p_neutral", "p_calm"]].to_numpy(),
        combine_probabilities([a.iloc[:, 4:6].to_numpy(), b.iloc[[1, 0], 4:6].to_numpy()]),
    )
    assert list(out["predicted"]) == ["neutral", "calm"]
    assert out["confidence"].between(0.5, 1).all()


def test_predictions_from_different_data_are_refused():
    labels = LABELS[:2]
    a = _table(["c/s/one.opus"], ["neutral"], np.array([[0.9, 0.1]]))
    with pytest.raises(ParameterError, match="another emotion"):
        combine_predictions([a, a.assign(emotion="calm")], labels)
    with pytest.raises(ParameterError, match="share no file"):
        combine_predictions([a, a.assign(path="c/s/other.opus")], labels)
    with pytest.raises(ParameterError, match="other labels"):
        combine_predictions([a, a.drop(columns="p_calm")], labels)


def test_read_predictions_says_what_is_missing(tmp_path):
    with pytest.raises(ParameterError, match="No predictions at"):
        read_predictions(tmp_path / "nothing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,emotion\nx,neutral\n")
    with pytest.raises(ParameterError, match="no per-file probabilities"):
        read_predictions(bad)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two small encoder heads trained differently on random frames, saved with held-out predictions
    on four shared clips (and one clip only the first has)."""
    from ser_lib import models

    root = tmp_path_factory.mktemp("members")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 40, 512)).astype(np.float32)
    folders = []
    for seed in (1, 2):
        model = models.encoder_head((None, 512), len(LABELS), width=16)
        y = np.eye(len(LABELS), dtype=np.float32)[np.random.default_rng(seed).integers(0, len(LABELS), len(x))]
        model.fit(x, y, epochs=2, verbose=0)
        bundle = ModelBundle.create(
            model,
            name=f"m{seed}",
            model_type="encoder_head",
            labels=LABELS,
            frontend=EncoderFrontEnd(),
            training={
                "corpora": [f"C{seed}"],
                "split": "none",
                "train_speakers": [f"C{seed}_a"],
                "held_out_run": {"train_speakers": [f"C{seed}_a"], "test_speakers": ["T_1"], "corpora": [f"C{seed}"]},
            },
        )
        bundle.card["metrics"] = {"source": f"held-out run m{seed}-heldout"}
        n = 5 if seed == 1 else 4
        probs = np.random.default_rng(10 + seed).dirichlet(np.ones(len(LABELS)), size=n)
        truth = ["angry", "sad", "happy", "neutral", "fear"][:n]
        table = _table([f"data/c/s/clip{i}.opus" for i in range(n)], truth, probs, corpus="T")
        table["predicted"] = [LABELS[k] for k in probs.argmax(axis=1)]
        folders.append(bundle.save(root / f"m{seed}", evaluation={"predictions": table.to_dict("records")}))
    return folders, x


def test_the_combined_network_runs_every_member_and_averages_in_log_space(members, tmp_path):
    (a, b), x = members
    out = tmp_path / "combined"
    assert main(["combine", str(a), str(b), "--out", str(out), "--weights", "2", "1"]) == 0
    combined = ModelBundle.load(out)  # through ONNX Runtime, as the app and the service run it
    frames = list(x[:6])
    want = combine_probabilities(
        [ModelBundle.load(a).probabilities_from_features(frames), ModelBundle.load(b).probabilities_from_features(frames)],
        [2 / 3, 1 / 3],
    )
    np.testing.assert_allclose(combined.probabilities_from_features(frames), want, atol=1e-4)

    card = json.loads((out / "card.json").read_text())
    ens = card["training"]["ensemble"]
    assert [m["name"] for m in ens["members"]] == ["m1", "m2"] and ens["weights"] == pytest.approx([2 / 3, 1 / 3], abs=1e-6)
    assert card["training"]["corpora"] == ["C1", "C2"] and card["training"]["train_speakers"] == ["C1_a", "C2_a"]
    assert card["training"]["held_out_run"]["members"] == ["m1-heldout", "m2-heldout"]
    assert card["metrics"]["source"] == "held-out run m1-heldout + m2-heldout"
    # the held-out figures: the members' predictions combined on the 4 clips both have
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert card["metrics"]["overall"]["n"] == 4 and len(evaluation["predictions"]) == 4
    tables = [read_predictions(a).iloc[:4], read_predictions(b)]
    p = combine_probabilities([t[[f"p_{lab}" for lab in LABELS]].to_numpy() for t in tables], [2 / 3, 1 / 3])
    assert [r["predicted"] for r in evaluation["predictions"]] == [LABELS[k] for k in p.argmax(axis=1)]


def test_combine_refuses_members_that_cannot_share_an_input(members, tmp_path, capsys):
    (a, _), _ = members
    from ser_lib import models

    other = ModelBundle.create(
        models.encoder_head((None, 512), 4, width=16),
        name="four",
        model_type="encoder_head",
        labels=LABELS[:4],
        frontend=EncoderFrontEnd(),
    ).save(tmp_path / "four")
    assert main(["combine", str(a), str(other), "--out", str(tmp_path / "x")]) != 0
    assert "members need the same labels" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(BundleError, match="same labels"):
        from ser_lib.ensemble import combine_bundles

        combine_bundles([a, other])
