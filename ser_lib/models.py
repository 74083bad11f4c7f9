"""Keras model builders (Keras 3, TensorFlow backend). Imported only when a model is needed.

- :func:`notebook_cnn1d`: the notebook's 1D CNN on the 162-value vector (629,096 parameters).
- :func:`logmel_cnn`: a 2D CNN on log-mel with SpecAugment masking and statistics pooling.
- :func:`encoder_head`: a small 1D CNN over Whisper encoder frames, frame masking,
  attentive statistics pooling; the project's default.

Custom layers are registered under the ``ser_lib`` package so ``.keras`` files load without
extra arguments once this module is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402


@keras.saving.register_keras_serializable(package="ser_lib")
class StatsPooling(layers.Layer):
    """Mean and standard deviation over time: [batch, time, ch] -> [batch, 2 * ch]."""

    def call(self, x):
        mean = ops.mean(x, axis=1)
        std = ops.sqrt(ops.maximum(ops.var(x, axis=1), 1e-6))
        return ops.concatenate([mean, std], axis=-1)


@keras.saving.register_keras_serializable(package="ser_lib")
class AttentiveStatsPooling(layers.Layer):
    """Attention-weighted mean and standard deviation over time (Okabe et al., 2018)."""

    def __init__(self, units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = layers.Dense(units, activation="tanh")
        self.score = layers.Dense(1)

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.score.build((*input_shape[:-1], self.units))
        super().build(input_shape)

    def call(self, x):
        w = ops.softmax(self.score(self.hidden(x)), axis=1)  # [batch, time, 1]
        mean = ops.sum(w * x, axis=1)
        var = ops.sum(w * ops.square(x), axis=1) - ops.square(mean)
        return ops.concatenate([mean, ops.sqrt(ops.maximum(var, 1e-6))], axis=-1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="ser_lib")
class TimeMasking(layers.Layer):
    """SpecAugment-style masking during training: zero ``n_masks`` spans of up to ``max_width``
    steps along axis 1, and (for 4D input) spans of up to ``max_freq`` bins along axis 2."""

    def __init__(self, n_masks: int = 2, max_width: int = 20, max_freq: int = 0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_masks, self.max_width, self.max_freq, self.seed = n_masks, max_width, max_freq, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, x, axis: int, width: int):
        length = ops.shape(x)[axis]
        batch = ops.shape(x)[0]
        pos = ops.arange(length)
        keep = ops.ones((batch, length))
        for _ in range(self.n_masks):
            w = keras.random.randint((batch, 1), 0, width + 1, seed=self.seed_generator)
            start = keras.random.randint((batch, 1), 0, ops.maximum(length - width, 1), seed=self.seed_generator)
            inside = ops.logical_and(pos[None, :] >= start, pos[None, :] < start + w)
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        shape = [batch] + [1] * (len(x.shape) - 1)
        shape[axis] = length
        return x * ops.cast(ops.reshape(keep, shape), x.dtype)

    def call(self, x, training=None):
        if not training:
            return x
        x = self._mask(x, 1, self.max_width)
        if self.max_freq and len(x.shape) == 4:
            x = self._mask(x, 2, self.max_freq)
        return x

    def get_config(self):
        return {
            **super().get_config(),
            "n_masks": self.n_masks,
            "max_width": self.max_width,
            "max_freq": self.max_freq,
            "seed": self.seed,
        }


def notebook_cnn1d(input_shape: tuple[int, ...] = (162, 1), num_classes: int = 8) -> keras.Model:
    """The notebook's model, layer for layer: Conv1D 256-256-128-128-64 (kernel 5), max-pooling,
    dropout, Dense 32, softmax. Adam, categorical cross-entropy."""
    inputs = keras.Input(shape=input_shape, name="features")
    x = inputs
    for i, filters in enumerate((256, 256, 128, 128, 64)):
        x = layers.Conv1D(filters, 5, strides=1, padding="same", activation="relu")(x)
        x = layers.MaxPooling1D(5, strides=2, padding="same")(x)
        if i in (2, 3):
            x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="notebook_cnn1d")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def logmel_cnn(input_shape: tuple[int, ...] = (151, 64), num_classes: int = 8, *, dropout: float = 0.3) -> keras.Model:
    """2D CNN on a log-mel [time, mels]: SpecAugment, four conv blocks, statistics pooling."""
    inputs = keras.Input(shape=input_shape, name="logmel")
    x = layers.Reshape((*input_shape, 1))(inputs)
    x = TimeMasking(n_masks=2, max_width=12, max_freq=8)(x)
    for filters in (16, 32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = ops.mean(x, axis=2)  # over frequency -> [batch, time, ch]
    x = StatsPooling()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="logmel_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def encoder_head(
    input_shape: tuple[int | None, int] = (None, 512),
    num_classes: int = 8,
    *,
    width: int = 128,
    dropout: float = 0.3,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """A 1D CNN over encoder frames [time, dim]: frame masking, 40 ms average pooling, a
    pointwise projection to ``width``, two conv layers, attentive statistics pooling, dropout,
    softmax. Works on any number of frames (at least one).

    The pooling and projection keep a training epoch over ~15,000 clips to well under a minute
    on two CPU cores; the encoder frames are highly redundant at 20 ms.
    """
    inputs = keras.Input(shape=input_shape, name="frames")
    x = layers.LayerNormalization()(inputs)
    x = TimeMasking(n_masks=2, max_width=10)(x)
    x = layers.AveragePooling1D(2, padding="same")(x)
    x = layers.Dense(width, activation="relu")(x)
    x = layers.SpatialDropout1D(0.1)(x)
    x = layers.Conv1D(width, 5, padding="same", activation="relu")(x)
    x = layers.Conv1D(width, 3, padding="same", activation="relu")(x)
    x = AttentiveStatsPooling(64)(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="encoder_head")
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=1e-3),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05),
        metrics=["accuracy"],
    )
    return model


@keras.saving.register_keras_serializable(package="ser_lib")
class LogLinearPool(layers.Layer):
    """Combine the class probabilities of several models: ``softmax(sum_i w_i * log p_i)``, the
    weighted geometric mean renormalised (a product of experts). A class one member rules out
    stays unlikely, unlike an arithmetic mean. Used by :func:`ser_lib.ensemble.combine_bundles`;
    :func:`ser_lib.ensemble.combine_probabilities` is the same in NumPy.
    """

    def __init__(self, member_weights=(0.5, 0.5), **kwargs):
        super().__init__(**kwargs)
        self.member_weights = [float(w) for w in member_weights]

    def call(self, inputs):
        logits = sum(w * ops.log(ops.clip(p, 1e-7, 1.0)) for w, p in zip(self.member_weights, inputs, strict=True))
        return ops.softmax(logits, axis=-1)

    def get_config(self):
        return {**super().get_config(), "member_weights": self.member_weights}


@keras.saving.register_keras_serializable(package="ser_lib")
class MaskedCrossEntropy(keras.losses.Loss):
    """Categorical cross-entropy over the emotions the clip's corpus labels.

    ``y_true`` [shape=(batch, 2 * k)] is the one-hot target followed by the corpus's label mask
    (1 for each emotion the corpus labels). The prediction is renormalised over the masked
    emotions before the log, so a corpus without calm (or surprise) neither rewards nor punishes
    the probability given to calm: it does not teach that calm never happens. Label smoothing is
    spread over the masked emotions only. With a mask of ones this is the plain (smoothed)
    categorical cross-entropy.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        k = ops.shape(y_pred)[-1]
        y, mask = y_true[:, :k], y_true[:, k:]
        p = ops.clip(y_pred, 1e-7, 1.0) * mask
        p = p / ops.sum(p, axis=-1, keepdims=True)
        target = y * (1.0 - self.label_smoothing) + self.label_smoothing * mask / ops.sum(mask, axis=-1, keepdims=True)
        return -ops.sum(target * ops.log(ops.clip(p, 1e-7, 1.0)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _masked_accuracy(y_true, y_pred):
    k = ops.shape(y_pred)[-1]
    y, mask = y_true[:, :k], y_true[:, k:]
    return ops.cast(ops.argmax(y_pred * mask, axis=-1) == ops.argmax(y, axis=-1), "float32")


def compile_masked(model: keras.Model) -> keras.Model:
    """Recompile ``model`` (its optimizer and label smoothing kept) for targets ``[one-hot | mask]``:
    :class:`MaskedCrossEntropy`, and accuracy over the masked emotions (still named ``accuracy``)."""
    smoothing = float(getattr(model.loss, "label_smoothing", 0.0) or 0.0)
    model.compile(
        optimizer=model.optimizer,
        loss=MaskedCrossEntropy(smoothing),
        metrics=[keras.metrics.MeanMetricWrapper(_masked_accuracy, name="accuracy")],
    )
    return model


BUILDERS = {"notebook_cnn1d": notebook_cnn1d, "logmel_cnn": logmel_cnn, "encoder_head": encoder_head}
