"""Training with an honest protocol.

- Speaker-independent split by default: within each corpus about ``test_size`` of the speakers
  are held out (at least one where a corpus has two or more); no speaker is on both sides.
- Augmented copies stay with their original: augmentation is computed per file and only the
  training files' copies are used; scalers are fitted on the training rows only.
- ``split="random"`` is the notebook's random split over clips (speakers on both sides), kept
  so both numbers can be shown side by side; ``split="none"`` trains on everything (the shipped
  model, after the held-out run has measured the protocol).

:func:`train` featurises (cached, every core), fits, evaluates and returns a :class:`TrainResult`
holding an unsaved :class:`~ser_lib.bundle.ModelBundle`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.preprocessing import StandardScaler

from .config import EMOTIONS, MODEL_TYPE_ALIASES, MODEL_TYPES, SPLITS
from .errors import ParameterError
from .evaluation import EvaluationResult, evaluate_predictions
from .featurize import EncoderExtractor, LogMelExtractor, NotebookExtractor, featurize_files
from .frontends import EncoderFrontEnd, LogMelFrontEnd, NotebookFrontEnd
from .progress import ProgressCallback, report

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """What to train and how. Defaults are the shipped model's settings."""

    model_type: str = "encoder_head"
    epochs: int = 30
    batch_size: int = 64
    split: str = "speaker"
    test_size: float = 0.2
    val_size: float = 0.1
    augment: bool = True
    seed: int = 0
    corpora: tuple[str, ...] | None = None
    learning_rate: float = 1e-3
    patience: int = 8
    telephone_eval: bool = True
    n_jobs: int | None = None
    #: Encoder head only: the augmented views of each training clip drawn besides the clean one.
    encoder_views: tuple[str, ...] = ("telephone", "pitch")
    #: Mask the loss to the emotions each corpus labels (:data:`ser_lib.corpora.CORPUS_EMOTIONS`).
    mask_loss: bool = True
    #: Encoder head only: draw training clips balanced across corpora and speakers (see :func:`sampling_weights`).
    balance: bool = True
    #: ``split="corpus"`` only: the corpus held out for testing (leave-one-corpus-out).
    holdout_corpus: str | None = None

    def __post_init__(self):
        self.model_type = MODEL_TYPE_ALIASES.get(self.model_type, self.model_type)
        if self.model_type not in MODEL_TYPES:
            raise ParameterError(f"model_type={self.model_type!r} is not one of {list(MODEL_TYPES)}")
        if self.split not in (*SPLITS, "corpus"):
            raise ParameterError(f"split={self.split!r} is not one of {[*SPLITS, 'corpus']}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError(f"epochs={self.epochs} and batch_size={self.batch_size} must be at least 1")
        if not 0.0 < self.test_size < 1.0:
            raise ParameterError(f"test_size={self.test_size} must be between 0 and 1")
        if self.split == "corpus" and not self.holdout_corpus:
            raise ParameterError("split='corpus' (leave one corpus out) needs holdout_corpus, e.g. holdout_corpus='URDU'")


@dataclass
class Split:
    """Row indices into the manifest, and the speakers on each side."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    kind: str
    train_speakers: list[str] = field(default_factory=list)
    test_speakers: list[str] = field(default_factory=list)
    #: Sentences for the user about what the split could not do (a corpus with one speaker, no test set).
    notes: list[str] = field(default_factory=list)

    @property
    def held_out(self) -> bool:
        """Whether any file is left for testing."""
        return len(self.test) > 0


class NoTestSetWarning(UserWarning):
    """A split leaves no file for testing: the model will have no held-out evaluation."""


def no_test_set_message(split: str, notes: Sequence[str] = ()) -> str:
    """What the Training page, the log and the card say when a split leaves nothing to test on."""
    why = " ".join(notes)
    split = {"speaker": "speaker-independent"}.get(split, split)
    return (
        f"The {split} split leaves no file for testing{': ' + why if why else '.'} The model will be trained on every "
        "file and saved without a held-out evaluation, so nobody can tell how it does on new voices. Add a corpus "
        "with two or more speakers (or more speakers of this one) to hold one out."
    )


def split_manifest(
    manifest: pd.DataFrame,
    *,
    split: str = "speaker",
    test_size: float = 0.2,
    val_size: float = 0.1,
    seed: int = 0,
    holdout: str | None = None,
) -> Split:
    """Split ``manifest`` rows into train / validation / test.

    ``speaker``: per corpus, hold out ``test_size`` of its speakers for test (at least one when it
    has two or more) and ``val_size`` of the remaining for validation (when three or more remain).
    ``random``: the notebook's random split over clips, stratified by emotion (leaks speakers).
    ``none``: everything is training data.
    ``corpus``: leave one corpus out: every file of ``holdout`` is the test set; the other corpora
    give training files and ``val_size`` of their speakers for validation.
    """
    n = len(manifest)
    idx = np.arange(n)
    if split == "none":
        return Split(idx, idx[:0], idx[:0], "none", sorted(manifest["speaker"].unique()), [])
    if split == "random":

        def stratified(ids: np.ndarray, size: float):
            """Stratify by emotion where every emotion can appear on both sides, else plainly."""
            labels = manifest["emotion"].iloc[ids]
            k = labels.nunique()
            n_small = int(np.ceil(size * len(ids)))
            ok = labels.value_counts().min() >= 2 and k <= n_small <= len(ids) - k
            return train_test_split(ids, test_size=size, random_state=seed, shuffle=True, stratify=labels if ok else None)

        train, test = stratified(idx, test_size)
        train, val = stratified(train, val_size) if val_size > 0 else (train, idx[:0])
        spk = sorted(manifest["speaker"].unique())
        return Split(np.sort(train), np.sort(val), np.sort(test), "random", spk, spk)
    if split == "corpus":
        return _corpus_split(manifest, holdout=holdout, val_size=val_size, seed=seed)
    if split != "speaker":
        raise ParameterError(f"split={split!r} is not one of {list(SPLITS)}")
    train, val, test = [], [], []
    notes = []
    for corpus, group in manifest.groupby("corpus", sort=True):
        speakers = np.array(sorted(group["speaker"].unique()))
        rows = group.index.to_numpy()
        if len(speakers) < 2:
            note = f"{corpus} has one speaker ({speakers[0]}), so all its files go to training and none is held out."
            logger.warning(note)
            notes.append(note)
            train.append(rows)
            continue
        n_test = max(1, int(round(test_size * len(speakers))))
        gss = GroupShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
        tr, te = next(gss.split(rows, groups=group["speaker"].to_numpy()))
        test.append(rows[te])
        rest = rows[tr]
        rest_speakers = group["speaker"].to_numpy()[tr]
        if len(np.unique(rest_speakers)) >= 3 and val_size > 0:
            n_val = max(1, int(round(val_size * len(np.unique(rest_speakers)))))
            gss = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed + 1)
            tr2, va = next(gss.split(rest, groups=rest_speakers))
            train.append(rest[tr2])
            val.append(rest[va])
        else:
            train.append(rest)
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else idx[:0]  # noqa: E731
    s = Split(cat(train), cat(val), cat(test), "speaker", notes=notes)
    pos = {label: i for i, label in enumerate(manifest.index)}
    s.train, s.val, s.test = (np.array([pos[i] for i in part], dtype=int) for part in (s.train, s.val, s.test))
    s.train_speakers = sorted(manifest["speaker"].iloc[s.train].unique())
    s.test_speakers = sorted(manifest["speaker"].iloc[s.test].unique())
    overlap = set(s.train_speakers) & set(s.test_speakers)
    if overlap:  # cannot happen by construction; guard the protocol anyway
        raise ParameterError(f"Speakers on both sides of a speaker-independent split: {sorted(overlap)}")
    if not s.held_out:
        message = no_test_set_message("speaker", notes)
        logger.warning(message)
        warnings.warn(message, NoTestSetWarning, stacklevel=2)
    return s


def _corpus_split(manifest: pd.DataFrame, *, holdout: str | None, val_size: float, seed: int) -> Split:
    """Leave one corpus out: test on every file of ``holdout``, train and validate on the others."""
    corpora = sorted(manifest["corpus"].unique())
    if holdout not in corpora:
        raise ParameterError(f"holdout corpus {holdout!r} is not in the data: expected one of {corpora}")
    if len(corpora) < 2:
        raise ParameterError(f"Leaving {holdout} out leaves nothing to train on: the data holds only {corpora}.")
    idx = np.arange(len(manifest))
    is_test = (manifest["corpus"] == holdout).to_numpy()
    train, val = [], []
    for _, group in manifest[~is_test].groupby("corpus", sort=True):
        rows = idx[(manifest.index.isin(group.index))]
        speakers = group["speaker"].to_numpy()
        if len(np.unique(speakers)) >= 3 and val_size > 0:
            n_val = max(1, int(round(val_size * len(np.unique(speakers)))))
            tr, va = next(GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed + 1).split(rows, groups=speakers))
            train.append(rows[tr])
            val.append(rows[va])
        else:
            train.append(rows)
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else idx[:0]  # noqa: E731
    s = Split(cat(train), cat(val), idx[is_test], "corpus", notes=[f"{holdout} held out whole (leave one corpus out)."])
    s.train_speakers = sorted(manifest["speaker"].iloc[s.train].unique())
    s.test_speakers = sorted(manifest["speaker"].iloc[s.test].unique())
    return s


def label_masks(corpora: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Per file, which of ``labels`` its corpus labels [shape=(n, k)], float32 (1 or 0).

    A corpus not in :data:`ser_lib.corpora.CORPUS_EMOTIONS` (a user's own) is taken to label every
    emotion of ``labels``.
    """
    from .corpora import CORPUS_EMOTIONS

    table = {c: np.array([lab in CORPUS_EMOTIONS.get(c, labels) for lab in labels], dtype=np.float32) for c in set(corpora)}
    return np.stack([table[c] for c in corpora]) if len(corpora) else np.zeros((0, len(labels)), np.float32)


def sampling_weights(corpora: Sequence[str], speakers: Sequence[str]) -> np.ndarray:
    """Draw probabilities balancing corpora and speakers [shape=(n,)], summing to 1.

    A corpus is drawn in proportion to the square root of its size, a speaker within its corpus
    in proportion to the square root of their number of clips, and a clip uniformly within its
    speaker. So CREMA-D's 6,704 clips no longer make up 46% of what the model hears (29%), and
    the 190 Urdu clips get 5% instead of 1.3%, without repeating a small corpus so often that
    the head learns it by heart.
    """
    frame = pd.DataFrame({"c": list(corpora), "s": list(speakers)})
    n_cs = frame.groupby(["c", "s"])["s"].transform("size").to_numpy(float)
    p_c = frame["c"].map((frame["c"].value_counts() ** 0.5) / (frame["c"].value_counts() ** 0.5).sum()).to_numpy(float)
    per_c = frame.assign(r=n_cs**0.5).drop_duplicates(["c", "s"]).groupby("c")["r"].sum()
    p_s = (n_cs**0.5) / frame["c"].map(per_c).to_numpy(float)
    w = p_c * p_s / n_cs
    return w / w.sum()


@dataclass
class TrainResult:
    """A trained, evaluated, unsaved bundle."""

    bundle: object
    evaluation: EvaluationResult | None
    history: pd.DataFrame
    seconds: float
    stopped: bool
    split: Split
    telephone: EvaluationResult | None = None


def _features(extractor, paths: Sequence[str], progress: ProgressCallback | None, n_jobs, label: str):
    return featurize_files(list(paths), extractor, n_jobs=n_jobs, progress=progress or True, desc=label)


def _callbacks(progress, should_stop, epochs):
    import keras

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            report(progress, "epoch", epoch + 1, epochs, **logs)

        def on_train_batch_end(self, batch, logs=None):
            if should_stop is not None and should_stop():
                self.model.stop_training = True

    return [Report()]


class _FrameBatches:
    """Batches of fixed-length frame crops for the encoder head.

    ``views[j]`` holds the versions of clip ``j`` (clean, through the telephone channel); each
    time a clip is drawn one version is picked at random, so augmentation costs no extra steps.
    Long clips are randomly cropped to ``n_frames``, short ones tiled. With ``weights`` each epoch
    draws as many clips as there are, with replacement, in proportion to them (:func:`sampling_weights`).
    """

    def __init__(self, views, labels, *, batch_size, n_frames, rng, shuffle=True, weights=None):
        import keras

        def order() -> np.ndarray:
            if weights is not None:  # as many draws as clips, with replacement, balanced
                return rng.choice(len(views), size=len(views), replace=True, p=weights)
            ids = np.arange(len(views))
            if shuffle:
                rng.shuffle(ids)
            return ids

        class Seq(keras.utils.PyDataset):
            def __init__(inner):
                super().__init__(workers=1, use_multiprocessing=False)
                inner.order = order()

            def __len__(inner):
                return math.ceil(len(views) / batch_size)

            def __getitem__(inner, i):
                ids = inner.order[i * batch_size : (i + 1) * batch_size]
                picks = [views[j][int(rng.integers(len(views[j])))] for j in ids]
                x = np.stack([_crop(f, n_frames, rng) for f in picks]).astype(np.float32)
                return x, labels[ids]

            def on_epoch_end(inner):
                inner.order = order()

        self.seq = Seq()


def _crop(f: np.ndarray, n: int, rng: np.random.Generator | None) -> np.ndarray:
    if len(f) >= n:
        start = 0 if rng is None else int(rng.integers(0, len(f) - n + 1))
        return f[start : start + n]
    reps = math.ceil(n / max(len(f), 1))
    return np.concatenate([f] * reps, axis=0)[:n]


def train(
    manifest: pd.DataFrame,
    config: TrainConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Featurise, split, fit, evaluate. Returns an unsaved bundle with its evaluation.

    Parameters
    ----------
    manifest : pd.DataFrame
        From :func:`ser_lib.corpora.find_corpora`.
    config : TrainConfig
    progress : :data:`~ser_lib.progress.ProgressCallback` or None
        Receives :class:`~ser_lib.progress.Progress` steps: ``"featurise"`` (files, with
        ``info["desc"]``), then ``"epoch"`` per epoch (``info``: loss, accuracy, val_loss,
        val_accuracy), then ``"evaluate"`` and ``"done"`` (``info["seconds"]``).
    should_stop : callable() -> bool or None
        Polled every batch; when it returns True training stops and the model so far is kept.
    """
    import keras

    from .bundle import ModelBundle
    from .models import encoder_head, logmel_cnn, notebook_cnn1d

    cfg = config or TrainConfig()
    t0 = time.time()
    df = manifest
    if cfg.corpora:
        df = df[df["corpus"].isin(cfg.corpora)]
    df = df.reset_index(drop=True)
    if df.empty:
        raise ParameterError(f"No files to train on (corpora={cfg.corpora}): check the data folder and the corpus choice.")
    labels = [e for e in EMOTIONS if e in set(df["emotion"])]
    if len(labels) < 2:
        raise ParameterError(f"Training needs at least two emotions; the data has {labels}.")
    lab_index = {e: i for i, e in enumerate(labels)}
    y_all = np.array([lab_index[e] for e in df["emotion"]])
    onehot = np.eye(len(labels), dtype=np.float32)
    masks = label_masks(list(df["corpus"]), labels)
    masked = cfg.mask_loss and not bool(masks.all())

    def target(ids) -> np.ndarray:
        """Training targets of files ``ids``: one-hot, then the corpus's label mask when masking."""
        ids = np.asarray(ids, dtype=int)
        return np.concatenate([onehot[y_all[ids]], masks[ids]], axis=1) if masked else onehot[y_all[ids]]

    split = split_manifest(
        df, split=cfg.split, test_size=cfg.test_size, val_size=cfg.val_size, seed=cfg.seed, holdout=cfg.holdout_corpus
    )
    paths = list(df["path"])
    keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    # --- features ------------------------------------------------------------------------
    scaler = None
    tel_test: list | None = None
    if cfg.model_type == "notebook_cnn1d":
        frontend = NotebookFrontEnd()
        values, failures = _features(
            NotebookExtractor(frontend, augment=cfg.augment, seed=cfg.seed), paths, progress, cfg.n_jobs, "notebook features"
        )
        ok = np.array([v is not None for v in values])

        def stack(ids, aug: bool):
            """Feature rows of files ``ids`` (all augmented rows, or the clip as loaded), and each row's file."""
            xs, ys = [], []
            for i in ids:
                if ok[i]:
                    x = values[i] if aug else values[i][:1]
                    xs.append(x)
                    ys += [i] * len(x)
            return (np.concatenate(xs) if xs else np.zeros((0, 162), np.float32)), np.array(ys, dtype=int)

        x_tr, y_tr = stack(split.train, cfg.augment)
        fitted = StandardScaler().fit(x_tr)  # on the training rows only
        mean, scale = fitted.mean_.astype(np.float32), fitted.scale_.astype(np.float32)
        scaler = {"mean": mean.tolist(), "scale": scale.tolist()}
        norm = lambda x: ((x - mean) / scale)[..., None].astype(np.float32)  # noqa: E731
        x_va, y_va = stack(split.val, False)
        model = notebook_cnn1d((162, 1), len(labels))
        fit_data = dict(x=norm(x_tr), y=target(y_tr), batch_size=cfg.batch_size, shuffle=True)
        val_data = (norm(x_va), target(y_va)) if len(y_va) else None
        test_inputs = lambda ids: [norm(values[i][:1])[0] for i in ids]  # noqa: E731
        callbacks = [keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.4, patience=2, min_lr=1e-7)]
    elif cfg.model_type == "logmel_cnn":
        frontend = LogMelFrontEnd()
        values, failures = _features(LogMelExtractor(frontend, "clean"), paths, progress, cfg.n_jobs, "log-mel")
        ok = np.array([v is not None for v in values])
        train_ids = [i for i in split.train if ok[i]]
        xs, ys = [values[i] for i in train_ids], list(train_ids)
        if cfg.augment:
            tel, _ = _features(
                LogMelExtractor(frontend, "telephone"), [paths[i] for i in train_ids], progress, cfg.n_jobs, "log-mel telephone"
            )
            xs += [v for v in tel if v is not None]
            ys += [i for i, v in zip(train_ids, tel, strict=True) if v is not None]
        model = logmel_cnn((frontend.n_frames, frontend.n_mels), len(labels))
        fit_data = dict(x=np.stack(xs).astype(np.float32), y=target(ys), batch_size=cfg.batch_size, shuffle=True)
        va_ids = [i for i in split.val if ok[i]]
        val_data = (np.stack([values[i] for i in va_ids]).astype(np.float32), target(va_ids)) if va_ids else None
        test_inputs = lambda ids: [values[i].astype(np.float32) for i in ids]  # noqa: E731
        callbacks = []
    else:
        frontend = EncoderFrontEnd()
        values, failures = _features(
            EncoderExtractor(frontend.backbone, "clean"), paths, progress, cfg.n_jobs, f"{frontend.backbone} frames"
        )
        ok = np.array([v is not None for v in values])
        train_ids = [i for i in split.train if ok[i]]
        views = [[values[i]] for i in train_ids]
        if cfg.augment:
            for view in cfg.encoder_views:
                extra, _ = _features(
                    EncoderExtractor(frontend.backbone, view, seed=cfg.seed),
                    [paths[i] for i in train_ids],
                    progress,
                    cfg.n_jobs,
                    f"{frontend.backbone} {view} frames",
                )
                for clip_views, v in zip(views, extra, strict=True):
                    if v is not None:
                        clip_views.append(v)
        test_ids_ok = [i for i in split.test if ok[i]]
        if cfg.telephone_eval and test_ids_ok:
            tel, _ = _features(
                EncoderExtractor(frontend.backbone, "telephone"),
                [paths[i] for i in test_ids_ok],
                progress,
                cfg.n_jobs,
                f"{frontend.backbone} telephone frames (test)",
            )
            tel_by_id = dict(zip(test_ids_ok, tel, strict=True))
            tel_test = [tel_by_id.get(i) for i in split.test]
        model = encoder_head((None, frontend_dim(frontend)), len(labels), learning_rate=cfg.learning_rate)
        weights = None
        if cfg.balance:
            weights = sampling_weights(list(df["corpus"].iloc[train_ids]), list(df["speaker"].iloc[train_ids]))
        data = _FrameBatches(
            views, target(train_ids), batch_size=cfg.batch_size, n_frames=frontend.train_frames, rng=rng, weights=weights
        )
        fit_data = dict(x=data.seq)
        va_ids = [i for i in split.val if ok[i]]
        val_data = None
        if va_ids:
            val_data = (
                np.stack([_crop(values[i], frontend.train_frames, None) for i in va_ids]).astype(np.float32),
                target(va_ids),
            )
        test_inputs = lambda ids: [values[i].astype(np.float32) for i in ids]  # noqa: E731
        steps = len(data.seq) * cfg.epochs
        model.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps, alpha=0.05)
        callbacks = []
    if masked:
        from .models import compile_masked

        compile_masked(model)
    if failures:
        logger.warning("%d file(s) skipped: %s", len(failures), failures[:3])
    if val_data is not None and cfg.model_type != "notebook_cnn1d":
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True))
    stopped = {"flag": False}

    def poll() -> bool:  # remembers that the user cancelled
        if should_stop is not None and should_stop():
            stopped["flag"] = True
        return stopped["flag"]

    callbacks += _callbacks(progress, poll, cfg.epochs)
    hist = model.fit(**fit_data, epochs=cfg.epochs, validation_data=val_data, callbacks=callbacks, verbose=0)
    history = pd.DataFrame(hist.history)
    history.index = np.arange(1, len(history) + 1)
    history.index.name = "epoch"

    first_rows = {c: int(np.flatnonzero((df["corpus"] == c).to_numpy())[0]) for c in sorted(df["corpus"].unique())}
    training = {
        "corpora": sorted(df["corpus"].unique()),
        "n_files": int(len(df)),
        "n_train_files": int(len(split.train)),
        "n_test_files": int(len(split.test)),
        "split": split.kind,
        "train_speakers": split.train_speakers,
        "test_speakers": split.test_speakers,
        "config": asdict(cfg),
        "loss_masking": {c: [lab for lab, on in zip(labels, masks[i], strict=True) if on] for c, i in first_rows.items()}
        if masked
        else None,
        "sampling": "balanced: corpus ~ sqrt(size), speaker ~ sqrt(clips)"
        if cfg.balance and cfg.model_type == "encoder_head"
        else "uniform",
        "epochs_run": int(len(history)),
        "failed_files": [[p, e] for p, e in failures],
    }
    bundle = ModelBundle.create(
        model, name="unsaved", model_type=cfg.model_type, labels=labels, frontend=frontend, training=training, scaler=scaler
    )

    # --- evaluate ----------------------------------------------------------------------------
    evaluation = telephone = None
    test_ids = [i for i in split.test if ok[i]]
    if test_ids and not stopped["flag"]:
        report(progress, "evaluate", 0, len(test_ids))
        evaluation = _evaluate(bundle, df, test_ids, test_inputs(test_ids), labels, split.kind)
        metrics = {"protocol": split.kind, "overall": evaluation.overall, "per_corpus": evaluation.per_corpus}
        if tel_test is not None:
            pos = {i: k for k, i in enumerate(split.test)}
            tids = [i for i in test_ids if tel_test[pos[i]] is not None]
            telephone = _evaluate(
                bundle, df, tids, [tel_test[pos[i]].astype(np.float32) for i in tids], labels, split.kind + "+telephone"
            )
            metrics["telephone"] = {"overall": telephone.overall, "per_corpus": telephone.per_corpus}
        bundle.card["metrics"] = metrics
    if not split.held_out:  # said on the card, not only in the log: the bundle has no figures on unseen voices
        note = no_test_set_message(split.kind, split.notes) if split.kind != "none" else "Trained on every file (split none)."
        bundle.card["training"]["held_out_evaluation"] = False
        bundle.card["training"]["notes"] = [*split.notes, note]
        bundle.card["metrics"] = {"protocol": split.kind, "held_out": False, "note": note}
    seconds = time.time() - t0
    bundle.card["training"]["seconds"] = round(seconds, 1)
    report(progress, "done", 1, 1, seconds=seconds)
    return TrainResult(bundle, evaluation, history, seconds, stopped["flag"], split, telephone)


def frontend_dim(frontend) -> int:
    from .backbone import BACKBONES

    return BACKBONES[frontend.backbone].dim


def _evaluate(
    bundle, df: pd.DataFrame, ids: list[int], inputs: list[np.ndarray], labels: list[str], protocol: str
) -> EvaluationResult:
    probs = bundle.probabilities_from_features(inputs)
    table = df.iloc[ids][["path", "corpus", "speaker", "emotion"]].reset_index(drop=True).copy()
    table["predicted"] = [labels[k] for k in probs.argmax(axis=1)]
    table["confidence"] = probs.max(axis=1)
    for k, lab in enumerate(labels):
        table[f"p_{lab}"] = probs[:, k]
    return evaluate_predictions(table, labels, meta={"protocol": protocol, "model": bundle.card.get("model_type")})
