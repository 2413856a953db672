"""The Python API: classify recordings from code with the same code path as ``predict.py``.

>>> import ser_lightning as ser                                                    # doctest: +SKIP
>>> model = ser.load_model("outputs/train/<run>/checkpoints/best.ckpt")             # doctest: +SKIP
>>> model.predict("clip.wav").label                                                 # doctest: +SKIP
'angry'
>>> model.predict(samples, sample_rate=48000).probabilities                         # doctest: +SKIP
{'neutral': 0.02, 'calm': 0.01, ...}
>>> [p.label for p in model.predict(["a.wav", "b.m4a"])]                            # doctest: +SKIP
['happy', 'sad']
>>> for p in model.predict("recordings/"): print(p.source, p.label)                 # doctest: +SKIP
recordings/a.wav happy
recordings/sub/b.flac sad
>>> model("clip.wav", top_k=2)                                                      # doctest: +SKIP
[{'label': 'angry', 'score': 0.61}, {'label': 'sad', 'score': 0.2}]

Calling the model (``model(x, top_k=5)``) answers in the shape of Hugging Face's ``audio-classification``
pipeline (``[{"label", "score"}, ...]`` sorted by score; one such list per input for a list or a folder);
:meth:`Prediction.top` gives the same from a :class:`Prediction`.

Every input goes through :func:`ser_lightning.inference.predictor.predict_files`, the function behind ``predict.py``:
the model's own decoding (soundfile, or PyAV for ``.m4a``/``.mp4``/``.webm``), mono, soxr resampling to the
model's rate, voice activity detection (a file or window without speech gets ``status="no speech"`` and no
emotion), optional silence trimming, sliding windows of the model's clip length (every ``hop_s`` seconds) or the
detected speech segments (``segment="vad"``), and the mean of the speech windows' probabilities.

``ser.load_model("default")`` loads the model shipped with the package.

Asking for the classes you need: ``ser.load_model("default", labels=["angry", "happy", "neutral", "sad"])`` or
``model.predict(x, labels=[...])`` restricts the probabilities to those classes and renormalises them (a class
the model does not have raises ``ValueError``). Adapting to a list of recordings without labels
(transductive; :func:`~ser_lightning.inference.predictor.predict_set`): ``model.predict(files, adapt="set")``
standardises the head's input with the statistics of all the list's windows, ``adapt_prior="em"``
re-estimates the class priors of the list by EM; each :class:`Prediction` then names its ``adaptation``
and keeps its ``plain`` answer. A list shorter than ``adapt_min_clips`` (20), or a single input, keeps the
model's training statistics (a warning says so).

A model trained with per-speaker normalisation (``data.speaker_norm=true``, a separate, transductive
protocol) needs recordings of the speaker: ``model.predict("clip.wav", speaker_reference=["a.wav", "b.wav"])``
(or a folder); a plain model given a ``speaker_reference`` raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ser_lightning.inference.adaptation import DEFAULT_MIN_CLIPS, PLAIN, check_adapt, label_subset
from ser_lightning.inference.predictor import (
    AudioArray,
    LoadedModel,
    find_audio,
    predict_set,
    speaker_reference_statistics,
)
from ser_lightning.inference.predictor import load_model as _load_any
from ser_lightning.inference.vad import NO_SPEECH, VadSettings


@dataclass
class WindowPrediction:
    """One analysis window of a long input (with ``segment="vad"``: one speech segment).

    Attributes:
        start_s: Window start in seconds from the start of the input.
        end_s: Window end in seconds.
        label: Arg-max class of the window; ``None`` when it holds no speech.
        confidence: Its probability.
        probabilities: Class name → probability.
        status: ``"ok"``, or ``"no speech"`` when the voice activity detector found too little speech.
        speech_fraction: Share of the window the detector marks as speech (``None`` without detection).
    """

    start_s: float
    end_s: float
    label: str | None
    confidence: float | None
    probabilities: dict[str, float] | None
    status: str = "ok"
    speech_fraction: float | None = None


@dataclass
class Prediction:
    """The result for one input (file or array).

    Attributes:
        source: File path or array name.
        status: ``"ok"``, ``"no speech"`` (the voice activity detector found no speech: a tone, noise,
            silence...) or ``"error"`` (lists only: a single input that fails raises instead).
        label: Predicted class (arg-max of the mean probabilities of the speech windows), ``None`` when
            ``status`` is not ``"ok"``.
        confidence: Its mean probability.
        probabilities: Class name → mean probability over the windows.
        windows: Per-window results (one window for inputs no longer than the model's clip).
        duration_s: Input duration in seconds.
        error: One-line reason when ``status == "error"``.
        speech_fraction: Share of the input the detector marks as speech (``None`` without detection).
        adaptation: ``"plain"``, or the transductive adaptation applied to the list it came in
            (:data:`~ser_lightning.inference.adaptation.ADAPT_SET`, ...).
        plain: The unadapted answer (``label``, ``confidence``, ``probabilities``) when ``adaptation`` is
            not plain, else ``None``.
    """

    source: str
    status: str
    label: str | None
    confidence: float | None
    probabilities: dict[str, float] | None
    windows: list[WindowPrediction] = field(default_factory=list)
    duration_s: float | None = None
    error: str = ""
    speech_fraction: float | None = None
    adaptation: str = PLAIN
    plain: dict[str, Any] | None = None

    def top(self, k: int | None = None) -> list[dict[str, Any]]:
        """The answer in the shape of Hugging Face's ``audio-classification`` pipeline.

        Args:
            k: How many classes; ``None``: all of them.

        Returns:
            ``[{"label": str, "score": float}, ...]`` sorted by score, highest first (ties in class order);
            ``[]`` when the input has no speech (``status="no speech"``) or failed (``status="error"``).

        Raises:
            ValueError: ``k`` is not a positive integer.
        """
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"top_k={k!r} must be a positive integer or None")
        if self.status != "ok" or not self.probabilities:
            return []
        ranked = sorted(self.probabilities.items(), key=lambda kv: -kv[1])  # stable: ties keep class order
        return [{"label": c, "score": float(p)} for c, p in ranked[:k]]

    @property
    def has_speech(self) -> bool:
        """False when the voice activity detector found no speech in the input."""
        return self.status != NO_SPEECH

    @classmethod
    def from_record(cls, rec: dict[str, Any], adaptation: str = PLAIN) -> Prediction:
        """Build from one record of :func:`~ser_lightning.inference.predictor.predict_files` (or ``predict_set``,
        whose ``adaptation`` name it then carries)."""
        return cls(source=rec["file"], status=rec["status"], label=rec["label"], confidence=rec["confidence"],
                   probabilities=rec["probabilities"], windows=[WindowPrediction(**w) for w in rec["windows"]],
                   duration_s=rec["duration_s"], error=rec["error"], speech_fraction=rec.get("speech_fraction"),
                   adaptation=adaptation if rec.get("plain") is not None else PLAIN, plain=rec.get("plain"))


class EmotionModel:
    """A loaded model (checkpoint, ONNX or TorchScript) that classifies files and arrays.

    Args:
        loaded: The model (see :func:`load_model`).
        hop_s: Seconds between window starts for long inputs; ``None`` = half the model's clip.
        batch_size: Windows per forward pass.
        trim_silence: Trim leading/trailing silence; ``None`` = as the model was trained.
        silence_dbfs: Inputs whose peak is below this level (dBFS) are all-silent (no speech; rejected with
            ``vad=False``).
        vad: Voice activity detection: ``True`` (default settings), ``False`` (classify every window),
            a :class:`~ser_lightning.inference.vad.VadSettings` or a dict of its fields (``threshold``,
            ``min_speech_fraction``, ``min_speech_s``, ``min_silence_s``, ``speech_pad_s``).
        segment: ``"window"`` (fixed windows every ``hop_s``) or ``"vad"`` (the detected speech segments).
        labels: Restrict every answer to these classes (names in any known spelling, or a label set such as
            ``"quad4"``); ``None``: all the model's classes.
        adapt: ``"none"`` or ``"set"``: lists are adapted to their own feature statistics (transductive).
        adapt_prior: ``"none"`` or ``"em"``: lists get their class priors re-estimated by EM (transductive).
        adapt_min_clips: Lists with fewer classified inputs keep the model's training statistics and prior.

    Raises:
        ValueError: a ``vad`` setting out of range, an unknown ``segment``, a class in ``labels`` the model
            does not have, or an adaptation setting outside its choices.

    Attributes:
        labels: Class names in output order (the ``labels`` restriction, else the model's classes).
        model_labels: All the model's classes.
        sample_rate: The model's rate in Hz (inputs at other rates are resampled).
        duration_s: The model's clip (window) length in seconds.
        protocol: ``plain``, or the per-speaker normalisation protocol of a model trained with
            ``data.speaker_norm=true`` (its :meth:`predict` then needs ``speaker_reference``).
    """

    def __init__(self, loaded: LoadedModel, hop_s: float | None = None, batch_size: int = 16,
                 trim_silence: bool | None = None, silence_dbfs: float = -60.0,
                 vad: bool | dict[str, Any] | VadSettings = True, segment: str = "window",
                 labels: str | list[str] | None = None, adapt: str = "none", adapt_prior: str = "none",
                 adapt_min_clips: int = DEFAULT_MIN_CLIPS) -> None:
        from ser_lightning.inference.vad import SEGMENT_MODES

        self._model = loaded
        self.hop_s, self.batch_size, self.trim_silence = hop_s, int(batch_size), trim_silence
        self.silence_dbfs = float(silence_dbfs)
        self.vad = VadSettings.from_any(vad)
        if segment not in SEGMENT_MODES:
            raise ValueError(f"segment={segment!r} is not one of {list(SEGMENT_MODES)}")
        self.segment = segment
        self.model_labels = list(loaded.labels)
        self.restrict = labels
        self.adapt, self.adapt_prior, self.adapt_min_clips = check_adapt(adapt, adapt_prior, adapt_min_clips,
                                                                          allowed=("none", "set"))
        self.labels = self.model_labels if labels is None else \
            [self.model_labels[i] for i in label_subset(labels, self.model_labels, loaded.source)]
        #: What the last :meth:`predict` call adapted (``predict_set``'s info: estimated prior, notes, ...).
        self.last_adaptation: dict[str, Any] | None = None
        self.sample_rate = int(loaded.audio_cfg.sample_rate)
        self.duration_s = float(loaded.audio_cfg.duration_s)
        self.protocol = loaded.protocol

    def __repr__(self) -> str:
        return (f"EmotionModel({self._model.name!r}, backend={self._model.backend!r}, labels={self.labels}, "
                f"sample_rate={self.sample_rate}, duration_s={self.duration_s})")

    def predict(self, audio: Any, sample_rate: int | None = None, speaker_reference: Any = None, *,
                labels: str | list[str] | None = None, adapt: str | None = None, adapt_prior: str | None = None,
                adapt_min_clips: int | None = None) -> Prediction | list[Prediction]:
        """Classify a file, a folder, an array, or a list of them (batched together).

        Args:
            audio: A path (``str``/``Path``: WAV, FLAC, OGG, MP3, M4A/AAC, MP4, WebM/Opus, ...), a folder (its
                audio files, searched recursively, in sorted order, as ``predict.py input=DIR`` takes them), a
                numpy array ``(time,)`` or ``(frames, channels)``, a torch tensor ``(time,)`` or
                ``(channels, time)``, or a list of any of these.
            sample_rate: Rate of array inputs in Hz (required for arrays, ignored for files).
            speaker_reference: For a model trained with ``data.speaker_norm=true`` (required there,
                refused otherwise): recordings of the same speaker — a folder, a path, an array, or a
                list of paths/arrays (arrays at ``sample_rate``) — whose pooled encoder states give
                the mean and sd that standardise every input window
                (:func:`~ser_lightning.inference.predictor.speaker_reference_statistics`).
            labels: Restrict the answers to these classes (probabilities renormalised); ``None``: the
                model's setting.
            adapt: ``"set"``: adapt a list to its own feature statistics (transductive); ``None``: the
                model's setting. A single input keeps the training statistics.
            adapt_prior: ``"em"``: re-estimate the list's class priors by EM (transductive); ``None``: the
                model's setting.
            adapt_min_clips: ``None``: the model's setting.

        Returns:
            A :class:`Prediction` for a single file or array; a list (same order; a folder's files in its
            place) for a folder or a list, where inputs that
            cannot be read have ``status="error"`` and a one-line ``error``. Inputs without speech
            have ``status="no speech"`` and ``label=None`` (single inputs too: it is an answer).

        Raises:
            ValueError: a single input cannot be read (unreadable, too short, all-silent with ``vad=False``...),
                or an array without ``sample_rate``; a speaker-normalised model without
                ``speaker_reference``, ``speaker_reference`` with a plain model, or an unreadable
                reference recording; a class in ``labels`` the model does not have; ``adapt="set"`` with a
                model that cannot be adapted (an exported one), ``adapt_prior="em"`` without a training prior.
            FileNotFoundError: a path does not exist.
        """
        single = not isinstance(audio, (list, tuple)) and not (isinstance(audio, (str, Path))
                                                                 and Path(audio).expanduser().is_dir())
        items = [audio] if single else [audio] if isinstance(audio, (str, Path)) else list(audio)
        inputs = [item for i, x in enumerate(items) for item in self._as_inputs(x, sample_rate, i)]
        stats = None
        if speaker_reference is not None:
            stats = speaker_reference_statistics(self._reference(speaker_reference, sample_rate), self._model,
                                                 hop_s=self.hop_s, trim=self.trim_silence,
                                                 silence_dbfs=self.silence_dbfs, batch_size=self.batch_size)
        records, info = predict_set(
            inputs, self._model, labels=self.restrict if labels is None else labels,
            adapt=self.adapt if adapt is None else adapt, adapt_prior=self.adapt_prior if adapt_prior is None else adapt_prior,
            adapt_min_clips=self.adapt_min_clips if adapt_min_clips is None else adapt_min_clips,
            hop_s=self.hop_s, batch_size=self.batch_size, trim=self.trim_silence, silence_dbfs=self.silence_dbfs,
            vad=self.vad, segment=self.segment, speaker_stats=stats)
        self.last_adaptation = info
        results = [Prediction.from_record(r, info["adaptation"]) for r in records]
        if single:
            if results[0].status == "error":
                raise ValueError(f"{results[0].source}: {results[0].error}")
            return results[0]
        return results

    @staticmethod
    def _reference(reference: Any, sample_rate: int | None) -> list[tuple[Path | AudioArray, str]]:
        """Reference recordings as ``[(path or AudioArray, name)]``: folders are searched, arrays need ``sample_rate``."""
        items = list(reference) if isinstance(reference, (list, tuple)) else [reference]
        out: list[tuple[Path | AudioArray, str]] = []
        for i, x in enumerate(items):
            if isinstance(x, (str, Path)):
                out += find_audio(x, setting="speaker_reference")
            else:
                out.append((AudioArray.from_any(x, sample_rate, f"<speaker_reference {i}>"), f"<speaker_reference {i}>"))
        return out

    @staticmethod
    def _as_inputs(x: Any, sample_rate: int | None, index: int) -> list[tuple[Path | AudioArray, str]]:
        """One input as ``[(path or AudioArray, name)]``: a folder gives its audio files (recursively, sorted;
        named ``<folder>/<relative path>``), a file itself, an array an :class:`AudioArray` named ``<array i>``."""
        if isinstance(x, (str, Path)):
            path = Path(x).expanduser()
            if path.is_dir():
                return [(f, str(Path(x) / name)) for f, name in find_audio(path, setting="audio")]
            if not path.exists():
                raise FileNotFoundError(f"{x}: no such file or folder")
            if not path.is_file():
                raise ValueError(f"{x}: not a regular file or folder")
            return [(path, str(x))]
        name = f"<array {index}>"
        if isinstance(x, AudioArray):  # from __call__'s {"array", "sampling_rate"} dicts
            return [(AudioArray(x.samples, x.sample_rate, name), name)]
        return [(AudioArray.from_any(x, sample_rate, name), name)]

    def __call__(self, inputs: Any, top_k: int | None = 5, sampling_rate: int | None = None,
                 **settings: Any) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """Classify in the shape of Hugging Face's ``audio-classification`` pipeline.

        ``model("clip.wav")`` → ``[{"label": "angry", "score": 0.61}, {"label": "sad", "score": 0.2}, ...]``;
        the same call and return shape as ``transformers.pipeline("audio-classification")``, over this
        package's decoding, voice activity detection and windowing (:meth:`predict`).

        Args:
            inputs: What :meth:`predict` takes (a path, a folder, an array, a tensor, a list of them), or a
                Hugging Face style dict ``{"array" (or "raw"): samples, "sampling_rate": Hz}`` (or a list of
                such dicts).
            top_k: How many classes per input, highest score first (at most the number of classes);
                ``None``: all. Hugging Face's default is 5.
            sampling_rate: Rate in Hz of array inputs (Hugging Face's name for :meth:`predict`'s ``sample_rate``).
            **settings: Keyword settings of :meth:`predict` (``labels``, ``adapt``, ``speaker_reference`` ...).

        Returns:
            For one input, ``[{"label", "score"}, ...]`` sorted by score; for a list or a folder, one such list
            per input (in order). An input without speech gives ``[]`` (no emotion to rank).

        Raises:
            ValueError: an input that cannot be read (named, with the reason), a bad ``top_k``, or the
                errors of :meth:`predict`.
            FileNotFoundError: a path does not exist.
        """
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k={top_k!r} must be a positive integer or None")

        def unwrap(x: Any) -> Any:
            if not isinstance(x, dict):
                return x
            samples = x.get("array", x.get("raw"))
            rate = x.get("sampling_rate")
            if samples is None or rate is None:
                raise ValueError(f"an input dict needs 'array' (or 'raw') and 'sampling_rate', got keys {sorted(x)}")
            return AudioArray.from_any(samples, int(rate), "<array>")

        many = isinstance(inputs, (list, tuple))
        items = [unwrap(x) for x in inputs] if many else unwrap(inputs)
        out = self.predict(items, sampling_rate, **settings)
        if isinstance(out, Prediction):
            return out.top(top_k)
        failed = [p for p in out if p.status == "error"]
        if failed:  # the pipeline's shape has no place for an error: raise, naming every failed input
            raise ValueError("; ".join(f"{p.source}: {p.error}" for p in failed))
        return [p.top(top_k) for p in out]


def load_model(path: str | Path, device: str = "cpu", card: str | Path | None = None, **settings) -> EmotionModel:
    """Load a trained model for prediction.

    Args:
        path: ``"default"`` (the model shipped with the package), a ``train.py`` checkpoint (``.ckpt``; loaded
            weights-only, no pickled code runs), or an ``export.py`` model (``.onnx``, ``.torchscript.pt``).
        device: ``cpu`` or a CUDA device (``cuda``, ``cuda:0``).
        card: Model card JSON of an exported model; ``None`` = next to it, else the embedded one.
        **settings: :class:`EmotionModel` settings (``hop_s``, ``batch_size``, ``trim_silence``,
            ``silence_dbfs``, ``vad``, ``segment``, ``labels``, ``adapt``, ``adapt_prior``, ``adapt_min_clips``).

    Returns:
        The :class:`EmotionModel`.

    Raises:
        FileNotFoundError: no such model file (or ``"default"`` and the shipped model is not installed).
        ValueError: unusable or unsafe checkpoint, unknown file type, missing model card, a bad setting (e.g.
            a class in ``labels`` the model does not have).
    """
    return EmotionModel(_load_any(path, device, card), **settings)


__all__ = ["EmotionModel", "Prediction", "WindowPrediction", "load_model"]
