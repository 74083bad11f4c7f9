"""What the Call timeline page shows, computed without Streamlit: summary cards (after the call
and live), the worst-moments and segments tables, the parties relabelled without analysing again,
an honest live-replay status, the player's audio, an example call built from held-out clips, and
a microphone conversation built by recording and appending turns.

The page reads its widgets, calls these and :mod:`ser_lib.calls`, and renders the results.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..audio import AudioInfo, audio_info, load_audio, to_wav_bytes
from ..calls import CallAnalysis, StreamingAnalyzer, TimelineSettings, format_clock, summarize
from ..calls.result import shown_emotions
from ..cards import held_out_source
from ..config import SAMPLE_RATE
from ..decisions import verdict
from ..errors import ParameterError
from .access import MAX_MIC_SECONDS, MAX_MIC_TURNS
from .model_view import named_source

#: Playback speeds offered for the live replay (``None``: as fast as the computer goes). The call's
#: audio plays along at the replay's speed (browsers keep the pitch); above 4x Chrome mutes media,
#: so the unthrottled replay is silent and says so.
REPLAY_SPEEDS: dict[str, float | None] = {
    "1x (real time)": 1.0,
    "2x": 2.0,
    "4x": 4.0,
    "as fast as possible (no audio)": None,
}
#: Browser player formats by file extension; anything else is converted to 16-bit WAV for the player.
PLAYER_FORMATS: dict[str, str] = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
}


@dataclass(frozen=True)
class PartyCard:
    """One party's headline figures, for ``st.metric``."""

    role: str
    dominant: str
    dominant_share: str
    mean_sentiment: str
    trend: str
    trend_delta: str | None
    speech: str


def party_cards(result: CallAnalysis) -> list[PartyCard]:
    """A card per party: dominant emotion and its share, mean sentiment, trend, speaking time."""
    cards = []
    for role, p in result.summary["parties"].items():
        trend = p["trend"]
        change = trend.get("change")
        cards.append(
            PartyCard(
                role=role,
                dominant=p["dominant"] or "no judged speech",
                dominant_share=(
                    f"{100 * p['shares'][p['dominant']]:.0f}% of judged speech"
                    + (f"; {p['uncertain_share']:.0%} of it uncertain" if p.get("uncertain_share") else "")
                    if p["dominant"]
                    else ""
                ),
                mean_sentiment=f"{p['mean_sentiment']:+.2f}" if p["mean_sentiment"] is not None else "n/a",
                trend=trend["direction"],
                trend_delta=None
                if change is None
                else f"{change:+.2f} from Q{trend['first_quarter']} to Q{trend['last_quarter']}",
                speech=f"{format_clock(p['speech_s'])} ({100 * (p['talk_share'] or 0):.0f}% of the call)",
            )
        )
    return cards


def worst_table(result: CallAnalysis) -> pd.DataFrame:
    """The worst moments as a table: rank, time, party, emotion, confidence, sentiment, start second."""
    rows = [
        {
            "#": i,
            "time": f"{format_clock(m['start_s'])}-{format_clock(m['end_s'])}",
            "party": m["role"],
            "emotion": verdict(m["emotion"], uncertain=bool(m.get("uncertain"))),
            "confidence": m["confidence"],
            "sentiment": m["sentiment"],
            "start_s": m["start_s"],
        }
        for i, m in enumerate(result.summary["worst_moments"], 1)
    ]
    return pd.DataFrame(rows, columns=["#", "time", "party", "emotion", "confidence", "sentiment", "start_s"])


def uncertain_note(result: CallAnalysis) -> str:
    """What the timeline's caption says about "uncertain" segments (grey, hatched)."""
    s = result.segments
    n = int(s["uncertain"].sum()) if len(s) and "uncertain" in s else 0
    return (
        f"Grey, hatched segments are 'uncertain': the model's confidence there is below {result.uncertain_below:.0%}, "
        f"so no emotion is named ({n} of {len(s)} segments)."
    )


def segments_table(result: CallAnalysis, parties: Sequence[str] | None = None) -> pd.DataFrame:
    """Segments for display: clock times, party, emotion ("uncertain" where the model was unsure),
    confidence, sentiment, valence and arousal.

    ``parties`` keeps only those parties' segments (``None`` or empty: every party).
    """
    s = result.segments
    if parties:
        s = s[s["role"].isin(list(parties))]
    return pd.DataFrame(
        {
            "start": s["start_s"].map(format_clock),
            "end": s["end_s"].map(format_clock),
            "party": s["role"],
            "emotion": shown_emotions(s) if len(s) else s["emotion"],
            "confidence": s["confidence"].round(2),
            "sentiment": s["sentiment"].round(2),
            **{dim: s[dim].round(2) for dim in ("valence", "arousal") if dim in s},
        }
    )


def digest(data: bytes) -> str:
    """A short content hash: the page's cache key for an upload."""
    return hashlib.sha1(data).hexdigest()[:16]


@dataclass
class MicConversation:
    """A conversation recorded turn by turn in the browser (``st.audio_input``) and analysed live.

    Each recording is decoded, followed by ``gap_s`` of silence (so the detector closes the turn)
    and fed to one :class:`StreamingAnalyzer`, whose timeline grows turn by turn. A microphone is
    mono, so its one party is :data:`ser_lib.calls.MONO_ROLE`.
    """

    bundle: object
    settings: TimelineSettings = field(default_factory=TimelineSettings)
    gap_s: float = 1.0
    analyzer: StreamingAnalyzer = field(init=False)
    audio: list[np.ndarray] = field(init=False, default_factory=list)
    seen: list[str] = field(init=False, default_factory=list)

    def __post_init__(self):
        self.analyzer = StreamingAnalyzer(self.bundle, sr=SAMPLE_RATE, channels=1, settings=self.settings, name="the recording")

    def add(self, data: bytes, name: str = "the recording") -> bool:
        """Append one recording (WAV bytes); returns False if this recording was added already.

        ``name`` names the recording in error messages.
        """
        key = digest(data)
        if key in self.seen:
            return False
        if self.turns >= MAX_MIC_TURNS or self.seconds >= MAX_MIC_SECONDS:
            raise ParameterError(
                f"This conversation holds {self.turns} recordings ({self.seconds / 60:.0f} min), the most one keeps "
                f"({MAX_MIC_TURNS} recordings, {MAX_MIC_SECONDS / 60:.0f} min): start a new conversation to record more."
            )
        y = load_audio(named_source(data, name), sr=SAMPLE_RATE, validate=False, max_seconds=MAX_MIC_SECONDS)
        if y.size == 0:
            what = "The recording" if name == "the recording" else f"The recording {name}"
            raise ParameterError(f"{what} is empty: record again and speak for at least a second.")
        y = np.concatenate([y, np.zeros(int(self.gap_s * SAMPLE_RATE), np.float32)])
        self.analyzer.feed(y)
        self.audio.append(y)
        self.seen.append(key)
        return True

    @property
    def turns(self) -> int:
        return len(self.seen)

    @property
    def seconds(self) -> float:
        """Audio kept so far, gaps included."""
        return sum(len(y) for y in self.audio) / SAMPLE_RATE

    def result(self) -> CallAnalysis:
        return self.analyzer.result(source="the recording")

    def wav(self) -> bytes:
        """Everything recorded so far (with the gaps) as WAV bytes, for the player."""
        y = np.concatenate(self.audio) if self.audio else np.zeros(SAMPLE_RATE // 10, np.float32)
        return to_wav_bytes(y, sr=SAMPLE_RATE)


def roles_for(left: str, options: Sequence[str] = ("agent", "customer")) -> tuple[str, str]:
    """The two roles with ``left`` on channel 0: the page's channel-role switch."""
    if left not in options:
        raise ParameterError(f"Left channel role {left!r} must be one of {list(options)}")
    other = [o for o in options if o != left][0]
    return (left, other)


# --- the parties, relabelled -----------------------------------------------------------------------


def relabel(result: CallAnalysis, roles: Sequence[str]) -> CallAnalysis:
    """The same analysis with channel ``c``'s party called ``roles[c]``, summary recomputed.

    Switching which channel is the agent changes names, not what was heard: the page relabels the
    stored analysis (milliseconds) instead of analysing the call again. A mono call, or ``roles``
    equal to the current ones, comes back unchanged.
    """
    roles = list(roles)
    if len(result.roles) < 2 or roles[: len(result.roles)] == list(result.roles):
        return result
    if len(roles) < len(result.roles) or len(set(roles)) != len(roles):
        raise ParameterError(f"roles={roles} must name each of the call's {len(result.roles)} channels once")
    roles = roles[: len(result.roles)]

    def named(frame: pd.DataFrame) -> pd.DataFrame:
        if frame is None or frame.empty or "channel" not in frame:
            return frame
        return frame.assign(role=[roles[int(c)] for c in frame["channel"]])

    segments, windows, speech = named(result.segments), named(result.windows), named(result.speech)
    summary = summarize(
        segments, windows, speech, duration_s=result.duration_s, roles=roles, labels=result.labels, name=result.source
    )
    if result.no_speech:
        summary["message"] = result.message
    return replace(result, segments=segments, windows=windows, speech=speech, summary=summary, roles=roles)


# --- live cards and the replay's status ------------------------------------------------------------


@dataclass(frozen=True)
class LiveCard:
    """One party's figures *so far* during a live replay (no quarters: the call is not over)."""

    role: str
    now: str
    now_detail: str
    so_far: str
    mean_sentiment: str
    speech: str


def live_cards(result: CallAnalysis) -> list[LiveCard]:
    """Per party: its latest judged emotion (and when), the emotion it has spent most time in so far,
    its mean sentiment so far and its speaking time so far. Never a quarter or a trend: a quarter
    of a call in progress is not known yet."""
    cards = []
    w = result.windows
    for role, p in result.summary["parties"].items():
        mine = w[w["role"] == role] if len(w) else w
        if len(mine):
            last = mine.sort_values("end_s").iloc[-1]
            now = verdict(str(last["emotion"]), uncertain=bool(last.get("uncertain", False)))
            detail = f"sentiment {last['sentiment']:+.2f} at {format_clock(last['end_s'])}"
        else:
            now, detail = "not judged yet", ""
        cards.append(
            LiveCard(
                role=role,
                now=now,
                now_detail=detail,
                so_far=f"mostly {p['dominant']} so far" if p["dominant"] else "no judged speech yet",
                mean_sentiment=f"{p['mean_sentiment']:+.2f}" if p["mean_sentiment"] is not None else "n/a",
                speech=f"{format_clock(p['speech_s'])} of speech so far",
            )
        )
    return cards


@dataclass
class ReplayProgress:
    """Where a live replay stands, for an honest status line.

    ``state`` is ``"not started"``, ``"running"``, ``"stopped"`` or ``"finished"``; ``asked`` is
    the speed chosen (``None``: as fast as possible); the speed achieved is measured, not assumed.
    """

    key: tuple = ()
    state: str = "not started"
    position_s: float = 0.0
    duration_s: float = 0.0
    elapsed_s: float = 0.0
    asked: float | None = 1.0
    result: CallAnalysis | None = None

    @property
    def achieved(self) -> float | None:
        """Seconds of call replayed per second of wall-clock time (None while running, before a second
        has passed: too early to say)."""
        if self.elapsed_s >= 1.0 or (self.state in ("finished", "stopped") and self.elapsed_s > 0):
            return self.position_s / self.elapsed_s
        return None

    @property
    def behind(self) -> bool:
        """Running more than 10 % slower than asked (after the first 3 s)."""
        a = self.achieved
        return self.asked is not None and a is not None and self.elapsed_s >= 3.0 and a < 0.9 * self.asked

    def text(self) -> str:
        asked = "as fast as possible" if self.asked is None else f"{self.asked:g}x"
        a = self.achieved
        rate = f"{a:.1f}x real time" if a is not None else "measuring the speed"
        where = f"{format_clock(self.position_s)} of {format_clock(self.duration_s)}"
        if self.state == "not started":
            return f"Not started: press Start to play the call into the live analyser at {asked}."
        if self.state == "running":
            text = f"Live: {where} · asked {asked}, running at {rate}"
            if self.behind:
                text += f" (this computer cannot keep up with {asked})"
            return text
        if self.state == "stopped":
            return f"Replay stopped at {where} (it ran at {rate}; asked {asked})."
        took = f"{self.elapsed_s:.1f}" if self.elapsed_s < 10 else f"{self.elapsed_s:.0f}"
        return f"Replay finished: {format_clock(self.duration_s)} of call in {took} s ({rate}; asked {asked})."


# --- the recording: facts, player, limits ----------------------------------------------------------


def call_facts(data: bytes, name: str) -> AudioInfo:
    """Sample rate, channels and length of an uploaded call, read from its header (errors name the file)."""
    return audio_info(named_source(data, name))


def player_audio(data: bytes, name: str) -> tuple[bytes, str]:
    """The call as a browser can play it, and its MIME type.

    WAV (PCM), FLAC, Ogg/Opus and MP3 pass through; anything else a browser may not decode (mu-law
    or A-law WAV from a phone system, for one) is converted to 16-bit PCM WAV, block by block.
    """
    import soundfile as sf

    info = call_facts(data, name)
    mime = PLAYER_FORMATS.get(Path(name).suffix.lower())
    if mime and not (info.format == "WAV" and not info.subtype.startswith(("PCM", "FLOAT", "DOUBLE"))):
        return data, mime
    out = io.BytesIO()
    with sf.SoundFile(named_source(data, name)) as src, sf.SoundFile(
        out, "w", samplerate=src.samplerate, channels=src.channels, format="WAV", subtype="PCM_16"
    ) as dst:
        for block in src.blocks(blocksize=src.samplerate * 30, dtype="float32", always_2d=True):
            dst.write(block)
    return out.getvalue(), "audio/wav"


def upload_limit_note(max_mb: int) -> str:
    """What the upload limit means in minutes of call, and where longer calls go."""
    mb = max_mb * 1024 * 1024
    wav16 = mb / (SAMPLE_RATE * 2) / 60  # 16 kHz mono 16-bit PCM
    phone = mb / (8000 * 2) / 60  # 8 kHz stereo mu-law (1 byte a sample)
    return (
        f"Up to {max_mb} MB per file: about {wav16:.0f} minutes of 16 kHz mono WAV, {phone:.0f} minutes of 8 kHz stereo "
        "telephone audio (mu-law), far more as MP3 or Opus. Longer calls: analyse them from a terminal with "
        "`python -m ser_lib analyze-call CALL.wav`, which streams the file from disk whatever its length."
    )


# --- an example call from held-out clips ----------------------------------------------------------

#: The example's turns: (role, emotions to try in order). The agent stays neutral or calm; the
#: customer starts neutral, grows angry and ends sad, so the page has something to show.
EXAMPLE_TURNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("agent", ("neutral",)),
    ("customer", ("neutral",)),
    ("agent", ("calm", "neutral")),
    ("customer", ("angry",)),
    ("agent", ("neutral",)),
    ("customer", ("angry",)),
    ("agent", ("calm", "neutral")),
    ("customer", ("sad", "neutral")),
)
#: Corpora whose clips are sentences (better turns than TESS's single words), most preferred first.
EXAMPLE_CORPORA: tuple[str, ...] = ("CREMA-D", "RAVDESS", "SAVEE", "TESS")


@dataclass
class ExampleCall:
    """A call assembled from clips of held-out speakers, with what each turn truly is."""

    data: bytes
    name: str
    turns: pd.DataFrame
    note: str


def example_speakers(card: dict, manifest: pd.DataFrame, *, model: str = "the model") -> tuple[list[str], str]:
    """The speakers an example call may use, and a sentence saying where they come from.

    The bundle's own test speakers when its card lists some; for a bundle trained on everyone (the
    shipped ``default``) the test speakers of the held-out run its figures come from, saying that
    the bundle heard them; otherwise none (no example: it would replay training voices).
    """
    training = (card or {}).get("training") or {}
    present = set(manifest["speaker"].astype(str)) if len(manifest) else set()
    own = [s for s in training.get("test_speakers") or [] if s in present]
    if own:
        return sorted(own), f"{len(own)} speakers {model} never heard in training"
    run = training.get("held_out_run") or {}
    sibling = [s for s in run.get("test_speakers") or [] if s in present]
    if sibling:
        source = held_out_source(card) or "its held-out run"
        return sorted(sibling), (
            f"{len(sibling)} speakers held out by {source}, the run {model}'s figures come from; {model} itself was "
            f"trained on every speaker, these included (pick {source} in the sidebar to hear a model that never heard them)"
        )
    return [], ""


def _trim(y: np.ndarray) -> np.ndarray:
    import librosa

    _, (a, b) = librosa.effects.trim(y, top_db=30, frame_length=512, hop_length=128)
    return y[a:b]


def _level(y: np.ndarray, db: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) or 1e-9
    out = y * (10 ** (db / 20) / rms)
    peak = float(np.max(np.abs(out)))
    return (out / peak * 0.95 if peak > 0.95 else out).astype(np.float32)


def example_call(
    manifest: pd.DataFrame, card: dict, *, model: str = "the model", seed: int = 0, clips_per_turn: int = 2
) -> ExampleCall | None:
    """A two-party stereo call (agent left, customer right, 16 kHz) from held-out clips, as
    ``benchmarks/make_calls.py`` builds its test calls: two speakers of one corpus, turns of
    ``clips_per_turn`` clips of one emotion each (:data:`EXAMPLE_TURNS`), trimmed of silence,
    levelled, 0.8-1.6 s apart, over faint line noise. ``None`` when no held-out speaker of the
    model is in ``manifest`` or no two of them have the emotions needed.
    """
    speakers, where = example_speakers(card, manifest, model=model)
    if len(speakers) < 2:
        return None
    rng = np.random.default_rng(seed)
    pool = manifest[manifest["speaker"].isin(speakers)]
    need = {"neutral", "angry"}
    pair = None
    for corpus in [*EXAMPLE_CORPORA, *sorted(set(pool["corpus"]) - set(EXAMPLE_CORPORA))]:
        ok = [s for s, g in pool[pool["corpus"] == corpus].groupby("speaker") if need <= set(g["emotion"])]
        if len(ok) >= 2:
            pair = [str(s) for s in rng.choice(sorted(ok), size=2, replace=False)]
            break
    if pair is None:
        return None
    roles = ("agent", "customer")
    parts, rows, t, used = [], [], 0.5, set()
    for role, wanted in EXAMPLE_TURNS:
        speaker = pair[roles.index(role)]
        clips = pool[pool["speaker"] == speaker]
        emotion = next((e for e in wanted if e in set(clips["emotion"])), "neutral")
        fresh = clips[~clips["path"].isin(used)]
        if (fresh["emotion"] == emotion).any():  # a clip is used twice only when its speaker has no other left
            clips = fresh
        chosen = clips[clips["emotion"] == emotion].sample(
            n=min(clips_per_turn, int((clips["emotion"] == emotion).sum())), random_state=int(rng.integers(1 << 31))
        )
        used |= set(chosen["path"])
        pieces = []
        for i, path in enumerate(chosen["path"]):
            pieces.append(_trim(load_audio(path, sr=SAMPLE_RATE, validate=False)))
            if i < len(chosen) - 1:
                pieces.append(np.zeros(int(0.25 * SAMPLE_RATE), np.float32))
        y = _level(np.concatenate(pieces), -26.0 + float(rng.uniform(-2, 2)))
        parts.append((roles.index(role), int(round(t * SAMPLE_RATE)), y))
        end = t + len(y) / SAMPLE_RATE
        rows.append(
            {
                "role": role,
                "emotion": emotion,
                "start": format_clock(t),
                "end": format_clock(end),
                "speaker": speaker,
                "clips": ", ".join(Path(p).name for p in chosen["path"]),
            }
        )
        t = end + float(rng.uniform(0.8, 1.6))
    n = int(round((t + 0.5) * SAMPLE_RATE))
    x = (10 ** (-66 / 20) * rng.standard_normal((2, n))).astype(np.float32)
    for channel, start, y in parts:
        x[channel, start : start + len(y)] += y
    note = (
        f"An example call of {format_clock(n / SAMPLE_RATE)} built from clips of {pair[0]} (agent, left channel) and "
        f"{pair[1]} (customer, right channel): two of the {where}. The table below says what each turn truly is."
    )
    return ExampleCall(to_wav_bytes(x, sr=SAMPLE_RATE), "example-call.wav", pd.DataFrame(rows), note)
