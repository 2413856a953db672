"""Classify the emotion of audio files with a trained model (the library behind ``predict.py``).

``python predict.py ckpt_path=MODEL input=FILE_OR_DIR [hop_s=1.5] [trim_silence=true] [output=DIR]``

``MODEL`` is a ``train.py`` checkpoint (``.ckpt``, run with PyTorch), or a file written by
``export.py``: ``.onnx`` (run with ONNX Runtime) or ``.torchscript.pt`` (TorchScript); the
exported files read their labels and preprocessing from the model card next to them
(``<name>.card.json``) or, without it, from the card embedded in the file.

Every file goes through the checkpoint's own preprocessing, built from
:mod:`ser_lightning.data.audio` (the functions that decoded the training data): any format
soundfile or PyAV (.m4a, .mp4, .webm) reads, channels averaged to mono, resampled with soxr (HQ) to the model's rate,
optionally silence-trimmed (energy-based, leading and trailing). The clip is then cut into
windows of the model's training duration, every ``hop_s`` seconds, the last window aligned with
the end of the file (so every sample is covered and no window is padded unless the whole file is
shorter than one window); each window is normalised like a training clip (peak/RMS) and a file
shorter than a window is padded the training way. A file's label is the arg-max of the mean of its
windows' probabilities. For a file no longer than one window this is exactly
:func:`ser_lightning.data.audio.load_clip`, i.e. what the model saw in training.

Voice activity detection (``vad.enabled=true``, the default of ``predict.py`` and the Python API;
:mod:`ser_lightning.inference.vad`, Silero VAD on the CPU) runs on each decoded file first: a window
with too little speech (``vad.min_speech_fraction``) is reported as ``status="no speech"`` with its
speech fraction instead of an emotion, the file's emotion is the mean over its speech windows, and a
file without speech (a tone, a constant signal, noise, digital silence) is ``no speech`` as a whole.
``segment=vad`` cuts a file at the detected speech segments instead of fixed windows, each reported
with its start and end in seconds.

A model trained with per-speaker normalisation (``data.speaker_norm=true``, a separate, transductive
protocol: :mod:`ser_lightning.data.speaker_norm`) needs the speaker's statistics:
``speaker_reference=[a.wav,b.wav,...]`` (or a folder) names recordings of the same speaker; their
windows' pooled encoder states give a mean and sd (:func:`speaker_reference_statistics`), and every
window to classify is standardised with them before the head. Without a reference such a model
refuses to predict; a reference given to a plain model is an error too.

Outputs (:func:`write_outputs`; ``predict.py`` also prints a table): in ``output`` (default: the run directory
``outputs/predict/<timestamp>/``) ``predictions.json`` (per file, with every window),
``predictions.csv`` (one row per file) and ``windows.csv`` (one row per window or speech segment).

Bad files (unreadable, empty, shorter than 25 ms, NaN/inf samples; all-silent without the detector) get
``status=error`` and a one-line ``error`` in every output while the other files are classified.

Exit code: 0 when at least one file was answered (classified or ``no speech``) (failures are listed in the outputs and
counted in a warning); 1 when no file could be classified, with ``strict=true`` when any file
failed, or on a configuration error (bad ``ckpt_path``, ``input``, setting, or a class in
``labels=`` the model does not have).

``labels=`` restricts the output to some classes and :func:`predict_set` adapts to a set of recordings without
labels (:mod:`ser_lightning.inference.adaptation`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch

from ser_lightning.data.audio import (
    AUDIO_EXTENSIONS,
    AudioConfig,
    AudioDecodeError,
    check_audio,
    fix_length,
    normalize,
    peak_dbfs,
    read_audio,
    trim_silence,
)
from ser_lightning.data.labels import LABEL_SETS, canonical_emotion, get_label_set
from ser_lightning.data.speaker_norm import protocol_name, speaker_statistics, standardise
from ser_lightning.inference.adaptation import (
    DEFAULT_MIN_CLIPS,
    adaptable,
    adaptation_name,
    adjust_to_prior,
    check_adapt,
    em_prior_correction,
    feature_statistics_used,
    label_subset,
    restrict_probabilities,
    training_prior,
)
from ser_lightning.inference.card import ONNX_CARD_KEY, TS_CARD_FILE, audio_config_from_card
from ser_lightning.inference.checkpoint import (
    ProbabilityModel,
    load_checkpoint,
    stored_datamodule_hparams,
)
from ser_lightning.inference.default_model import resolve_model_path
from ser_lightning.inference.runners import OnnxRunner
from ser_lightning.inference.vad import (
    NO_SPEECH,
    SEGMENT_MODES,
    VadSettings,
    speech_fraction,
    speech_segments,
)

log = logging.getLogger(__name__)



class PredictionFailed(ValueError):
    """No file could be classified (or, with ``strict=true``, some file failed)."""


class SilentAudioError(AudioDecodeError):
    """All-silent audio (peak below ``silence_dbfs``): an error without voice activity detection, no speech with it.

    Attributes:
        info: ``duration_s``, ``source_sample_rate`` (Hz), ``channels`` and ``peak_dbfs`` of the audio.
    """

    def __init__(self, message: str, info: dict[str, Any]) -> None:
        super().__init__(message)
        self.info = info


# --------------------------------------------------------------------------------------- model
@dataclass
class LoadedModel:
    """A model ready for prediction, whatever its format.

    Attributes:
        run: ``(batch, num_samples)`` float32 array → ``(batch, n_classes)`` probabilities; with
            ``takes_lengths`` it also takes the valid samples per row ``(batch,)`` as a second argument.
        labels: Class names in output order.
        audio_cfg: Preprocessing the model expects (sample rate Hz, clip length, normalisation...).
        name: Network name (``model.name``).
        backend: ``pytorch``, ``torchscript`` or ``onnxruntime``.
        source: Model file.
        speaker_norm: Trained with ``data.speaker_norm=true``: ``run`` refuses, and prediction goes
            ``embed`` → per-speaker standardisation → ``run_pooled`` with a speaker reference.
        embed: ``(batch, num_samples)`` float32 → pooled hidden states ``(batch, hidden_states, pooled_dim)``
            (checkpoints of encoder models with per-layer pooling; ``None`` otherwise).
        run_pooled: Pooled hidden states ``(batch, hidden_states, pooled_dim)`` (and optional ``(mean, sd)``
            statistics for the head's input) → ``(batch, n_classes)`` probabilities (as ``embed``).
        takes_lengths: ``run`` and ``embed`` take each window's valid length: a checkpoint trained on
            whole clips (``data.clip_length=whole``), whose pooling must ignore a short window's padding
            as it ignored a short clip's padding in training. Exported models take fixed windows, except
            a speech-encoder model's ONNX export, which takes lengths too.
        adapt_refusal: Why feature adaptation (``adapt=set``) is not possible, or ``None`` when it is
            (a checkpoint of an encoder model with per-layer pooling: ``embed`` and ``run_pooled`` are set,
            and ``run_pooled(pooled, (mean, sd))`` standardises the head's input with those statistics).
        training_prior: The class prior the posteriors are calibrated to
            (:func:`~ser_lightning.inference.adaptation.training_prior`), ``None`` when unknown.
        prior_refusal: Why ``adapt_prior=em`` is not possible, or ``None``.
    """

    run: Callable[[np.ndarray], np.ndarray]
    labels: list[str]
    audio_cfg: AudioConfig
    name: str
    backend: str
    source: str
    speaker_norm: bool = False
    embed: Callable[[np.ndarray], np.ndarray] | None = None
    run_pooled: Callable[..., np.ndarray] | None = None
    takes_lengths: bool = False
    adapt_refusal: str | None = "only a train.py checkpoint (.ckpt) of an encoder model can be adapted"
    training_prior: np.ndarray | None = None
    prior_refusal: str | None = ("adapt_prior=em needs the training class counts and loss weights, which only a "
                                 "train.py checkpoint (.ckpt) stores")

    @property
    def protocol(self) -> str:
        """``plain`` or the per-speaker normalisation protocol (:mod:`ser_lightning.data.speaker_norm`)."""
        return protocol_name(self.speaker_norm)


def _torch_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device={device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: no CUDA device is available here; use device=cpu")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def _torch_runner(module: Any, device: torch.device) -> Callable[..., np.ndarray]:
    def run(batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        with torch.inference_mode():
            wave = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
            if lengths is None:
                probs = module(wave)
            else:
                probs = module(wave, torch.as_tensor(np.asarray(lengths, dtype=np.int64), device=device))
        return probs.float().cpu().numpy()

    return run


def _reference_required(source: Any) -> str:
    return (f"ckpt_path={source} was trained with data.speaker_norm=true and needs the speaker's statistics: pass "
            "speaker_reference=[a.wav,b.wav,...] (or a folder) with several recordings of the same speaker")


def _reference_refused(source: Any) -> str:
    return (f"speaker_reference is for models trained with data.speaker_norm=true; {source} was trained without it "
            "(protocol: plain): leave speaker_reference out")


def _pooled_functions(classifier: Any, device: torch.device) -> tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]:
    """``(embed, run_pooled)`` of a classifier whose network splits at its pooled hidden states.

    ``embed(batch (n, samples), lengths (n,) or None)`` → pooled states ``(n, hidden_states, pooled_dim)``;
    ``run_pooled(pooled, stats=None)`` → probabilities ``(n, n_classes)``, with ``stats = (mean, sd)`` the
    head's input standardised with those statistics for this call
    (:func:`~ser_lightning.inference.adaptation.feature_statistics_used`).
    """
    network, frontend = classifier.network, classifier.frontend

    def embed(batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        with torch.inference_mode():
            wave = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
            n = None if lengths is None else torch.as_tensor(np.asarray(lengths, dtype=np.int64), device=device)
            return network.pooled_states(frontend(wave), n).float().cpu().numpy()

    def run_pooled(pooled: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        with torch.inference_mode(), feature_statistics_used(network, stats):
            x = torch.from_numpy(np.ascontiguousarray(pooled, dtype=np.float32)).to(device)
            return torch.softmax(network.forward_pooled(x).float(), dim=-1).cpu().numpy()

    return embed, run_pooled


def _checkpoint_prior(classifier: Any, path: Path) -> tuple[np.ndarray | None, str | None]:
    """The checkpoint's training prior (:func:`~ser_lightning.inference.adaptation.training_prior`) or why not."""
    hp = classifier.hparams
    try:
        stored = stored_datamodule_hparams(path)
        return training_prior(hp.get("class_counts"), hp.get("class_weights"), stored.get("sampler"),
                              len(classifier.class_names), stored.get("corpus_weights"),
                              hp.get("corpus_class_counts")), None
    except (ValueError, OSError) as err:
        return None, f"adapt_prior=em: ckpt_path={path}: {err}"


def _speaker_norm_model(classifier: Any, audio_cfg: AudioConfig, path: Path, device: torch.device) -> LoadedModel:
    """A :class:`LoadedModel` of a checkpoint trained with ``data.speaker_norm=true`` (split at the pooled states)."""
    network = classifier.network
    if not (hasattr(network, "pooled_states") and hasattr(network, "forward_pooled")):
        raise ValueError(f"ckpt_path={path}: trained with data.speaker_norm=true, but its network "
                         f"{type(network).__name__} has no pooled hidden states to standardise")
    embed, run_pooled = _pooled_functions(classifier, device)

    def refuse(batch: np.ndarray) -> np.ndarray:
        raise ValueError(_reference_required(path))

    prior, why = _checkpoint_prior(classifier, path)
    return LoadedModel(refuse, list(classifier.class_names), audio_cfg, str(classifier.hparams["model"].get("name")),
                       "pytorch", str(path), speaker_norm=True, embed=embed, run_pooled=run_pooled,
                       takes_lengths=audio_cfg.clip_length == "whole",
                       adapt_refusal=(f"ckpt_path={path} was trained with data.speaker_norm=true: its input is already "
                                      "standardised with the speaker reference"),
                       training_prior=prior, prior_refusal=why)


def _card_path(model_path: Path) -> Path:
    name = model_path.name
    for suffix in (".torchscript.pt", ".onnx", ".pt"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return model_path.with_name(f"{name}.card.json")


def load_model(path: str | Path, device: str = "cpu", card: str | Path | None = None) -> LoadedModel:
    """Load a checkpoint or an exported model for prediction.

    Args:
        path: ``train.py`` checkpoint (``.ckpt``), ONNX (``.onnx``) or TorchScript (``.pt``) file, or
            ``"default"``: the shipped default model (:mod:`ser_lightning.inference.default_model`).
        device: ``cpu`` (default) or a CUDA device (``cuda``, ``cuda:0``).
        card: Model card JSON of an exported model; ``None`` = ``<name>.card.json`` next to it,
            else the card embedded in the file.

    Returns:
        The :class:`LoadedModel`.

    Raises:
        FileNotFoundError: the model or the given card does not exist (or the shipped default is not installed).
        ValueError: unknown file type, unusable checkpoint, no model card, or a device that is
            not available.
    """
    path = resolve_model_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such model file")
    dev = _torch_device(device)
    suffix = path.suffix.lower()
    if suffix == ".ckpt":
        classifier, audio_cfg = load_checkpoint(path, map_location=str(dev))
        if stored_datamodule_hparams(path).get("speaker_norm"):
            return _speaker_norm_model(classifier.to(dev), audio_cfg, path, dev)
        module = ProbabilityModel.from_classifier(classifier).to(dev)
        why = adaptable(classifier.network)
        embed, run_pooled = _pooled_functions(classifier, dev) if why is None else (None, None)
        prior, prior_why = _checkpoint_prior(classifier, path)
        return LoadedModel(_torch_runner(module, dev), list(classifier.class_names), audio_cfg,
                           str(classifier.hparams["model"].get("name")), "pytorch", str(path),
                           embed=embed, run_pooled=run_pooled, takes_lengths=audio_cfg.clip_length == "whole",
                           adapt_refusal=None if why is None else f"adapt=set: ckpt_path={path}: {why}",
                           training_prior=prior, prior_refusal=prior_why)
    if suffix not in (".onnx", ".pt"):
        raise ValueError(f"ckpt_path={path}: unknown model file type {suffix!r}; expected .ckpt (train.py), "
                         ".onnx or .torchscript.pt (export.py)")
    card_file = Path(card).expanduser() if card else _card_path(path)
    if card and not card_file.is_file():
        raise FileNotFoundError(f"card={card_file}: no such model card")
    embedded: str | None = None
    if suffix == ".onnx":
        providers = ["CPUExecutionProvider"]
        if dev.type == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"device={device!r}: this onnxruntime has no CUDAExecutionProvider; use device=cpu")
            providers = [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
        runner = OnnxRunner(path, providers=providers)
        embedded = runner.metadata().get(ONNX_CARD_KEY)
        run, backend = runner, "onnxruntime"
    else:
        extra = {TS_CARD_FILE: ""}
        module = torch.jit.load(str(path), map_location=dev, _extra_files=extra).eval()
        embedded = extra[TS_CARD_FILE] or None
        run, backend = _torch_runner(module, dev), "torchscript"
    if card_file.is_file():
        info = json.loads(card_file.read_text())
    elif embedded:
        info = json.loads(embedded)
    else:
        raise ValueError(f"ckpt_path={path}: no model card ({card_file} is missing and the file embeds none); "
                         "pass card=PATH")
    audio_cfg = audio_config_from_card(info)
    # a whole-clip ONNX export (speech-encoder models) takes each window's valid samples, as the checkpoint does
    takes_lengths = audio_cfg.clip_length == "whole" and bool(getattr(run, "takes_lengths", False))
    return LoadedModel(run, list(info["labels"]), audio_cfg, str(info.get("model_name")), backend, str(path),
                       takes_lengths=takes_lengths)


def check_labels(requested: str | Sequence[str] | None, model_labels: Sequence[str], source: str = "") -> None:
    """Check that a model predicts exactly the requested classes (in any order).

    ``predict.py``'s ``labels=`` no longer checks this but restricts the output
    (:func:`~ser_lightning.inference.adaptation.label_subset`); this check stays for callers that need it.

    Args:
        requested: ``None`` (no check), a label-set name (``ravdess8``, ``ekman7``, ``core6``,
            ``quad4``) or emotion names in any known spelling (``ANG``, ``fearful``, ...).
        model_labels: The model's class names.
        source: Model file, named in the message.

    Raises:
        ValueError: the class sets differ (the message lists what is missing and what is extra)
            or a requested name is not a known emotion / label set.
    """
    if requested is None:
        return
    if isinstance(requested, str):
        if requested in LABEL_SETS:
            wanted = list(get_label_set(requested).classes)
        else:
            wanted = [canonical_emotion(x, "labels") for x in requested.split(",") if x.strip()]
    else:
        wanted = [canonical_emotion(x, "labels") for x in requested]
    have = [canonical_emotion(x) for x in model_labels]
    if set(wanted) != set(have):
        missing = [x for x in wanted if x not in have]
        extra = [x for x in have if x not in wanted]
        raise ValueError(f"labels={wanted}: model {source} predicts {list(model_labels)} "
                         f"(requested but not predicted: {missing}; predicted but not requested: {extra})")


# --------------------------------------------------------------------------------------- audio
@dataclass(frozen=True)
class AudioArray:
    """In-memory audio to classify (the Python API's ``model.predict(array, sample_rate)``).

    Attributes:
        samples: ``(time,)`` mono, or ``(frames, channels)`` as soundfile returns it (numpy); a torch tensor
            ``(channels, time)`` as torchaudio returns it is accepted by :meth:`from_any`.
        sample_rate: Rate in Hz.
        name: Shown in results and messages.
    """

    samples: np.ndarray
    sample_rate: int
    name: str = "<array>"

    @classmethod
    def from_any(cls, samples: Any, sample_rate: int, name: str = "<array>") -> AudioArray:
        """Normalise a numpy array or torch tensor to float32 ``(frames, channels)``.

        Raises:
            ValueError: ``sample_rate`` missing or not positive, or more than 2 dimensions.
        """
        if sample_rate is None or int(sample_rate) <= 0:
            raise ValueError(f"{name}: sample_rate (Hz) is required with an array, got {sample_rate!r}")
        if isinstance(samples, torch.Tensor):
            x = samples.detach().cpu().float().numpy()
            x = x[:, None] if x.ndim == 1 else x.T  # torchaudio: (channels, time)
        else:
            x = np.asarray(samples, dtype=np.float32)
            x = x[:, None] if x.ndim == 1 else x
        if x.ndim != 2:
            raise ValueError(f"{name}: expected (time,) or (frames, channels) audio, got shape {tuple(x.shape)}")
        return cls(np.ascontiguousarray(x, dtype=np.float32), int(sample_rate), name)


def to_model_rate(audio: np.ndarray, sr: int, sample_rate: int, name: str | Path,
                  silence_dbfs: float = -60.0) -> tuple[np.ndarray, dict]:
    """Mono float32 waveform at ``sample_rate`` Hz from ``(frames, channels)`` audio, as training did.

    Mean of the channels, soxr HQ resampling; the all-silent check on the result.

    Args:
        audio: ``(frames, channels)`` float32 samples at ``sr`` Hz (checked by
            :func:`~ser_lightning.data.audio.check_audio`).
        sr: Its rate in Hz.
        sample_rate: Target rate in Hz.
        name: File or array name, first in messages.
        silence_dbfs: Audio whose peak is below this level (dB re full scale) is all-silent.

    Returns:
        ``(waveform (time,), info)`` with ``info = {"duration_s", "source_sample_rate" (Hz), "channels",
        "peak_dbfs"}``.

    Raises:
        AudioDecodeError: too short to resample.
        SilentAudioError: all-silent (a subclass of ``AudioDecodeError``).
    """
    x = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate, quality="HQ")
        if len(x) == 0:
            raise AudioDecodeError(f"{name}: too short to resample ({audio.shape[0]} samples at {sr} Hz)")
    peak = peak_dbfs(x)
    info = {"duration_s": audio.shape[0] / sr, "source_sample_rate": sr, "channels": int(audio.shape[1]),
            "peak_dbfs": round(peak, 2) if math.isfinite(peak) else None}
    if peak < silence_dbfs:
        level = f"{peak:.1f} dBFS" if math.isfinite(peak) else "digital silence"
        raise SilentAudioError(f"{name}: all-silent audio (peak {level} < silence_dbfs={silence_dbfs:g})", info)
    return np.ascontiguousarray(x, dtype=np.float32), info


def decode_mono(path: str | Path | AudioArray, sample_rate: int, silence_dbfs: float = -60.0) -> tuple[np.ndarray, dict]:
    """Decode a file (or take an :class:`AudioArray`) to a mono float32 waveform at ``sample_rate`` Hz.

    Same steps as :func:`ser_lightning.data.audio.load_clip` before trimming: decode
    (:func:`~ser_lightning.data.audio.read_audio`), mean of the channels, soxr HQ resampling
    (:func:`to_model_rate`).

    Args:
        path: Audio file in any format :func:`~ser_lightning.data.audio.read_audio` decodes, or an
            :class:`AudioArray`.
        sample_rate: Target rate in Hz.
        silence_dbfs: A file whose peak is below this level (dB re full scale) is all-silent.

    Returns:
        ``(waveform (time,), info)``; see :func:`to_model_rate`.

    Raises:
        AudioDecodeError: unreadable/corrupt, empty, shorter than
            :data:`~ser_lightning.data.audio.MIN_DURATION_S`, NaN/inf samples, too short to resample, or
            all-silent.
    """
    if isinstance(path, AudioArray):
        audio, sr, name = check_audio(path.samples, path.sample_rate, path.name), path.sample_rate, path.name
    else:
        (audio, sr), name = read_audio(path), path
    return to_model_rate(audio, sr, sample_rate, name, silence_dbfs)


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of sliding windows covering a signal.

    Args:
        n_samples: Signal length in samples.
        window: Window length in samples.
        hop: Hop in samples (≥ 1).

    Returns:
        ``[0]`` when ``n_samples <= window``; else ``0, hop, 2·hop, …`` while the window fits,
        plus one window ending at the last sample if those do not reach it.
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def make_window(x: np.ndarray, start: int, cfg: AudioConfig) -> np.ndarray:
    """One model input: ``cfg.num_samples`` samples from ``start``, normalised and padded as in training.

    Args:
        x: Mono waveform ``(time,)`` at ``cfg.sample_rate``.
        start: First sample.
        cfg: The model's preprocessing (``normalize``, ``target_rms_dbfs``, ``pad_mode``).

    Returns:
        float32 ``(cfg.num_samples,)``.
    """
    seg = normalize(x[start : start + cfg.num_samples], cfg.normalize, cfg.target_rms_dbfs)
    return fix_length(np.ascontiguousarray(seg, dtype=np.float32), cfg.num_samples, cfg.pad_mode, cfg.crop)


def window_length(n_samples: int, start: int, cfg: AudioConfig) -> int:
    """Valid samples of the window that starts at ``start`` of an ``n_samples``-long recording.

    Whole-clip models (``cfg.clip_length == "whole"``) saw each training clip at its own length, the
    rest zero padding that their pooling ignored; a prediction window shorter than the model's clip
    (a short file, the end of a long one) gets the same treatment. Fixed-length models read every
    window whole.

    Args:
        n_samples: Length of the recording (or segment) in samples.
        start: Window start in samples.
        cfg: The model's preprocessing.

    Returns:
        ``min(cfg.num_samples, n_samples - start)`` (at least 1) for whole-clip models, else ``cfg.num_samples``.
    """
    if cfg.clip_length != "whole":
        return cfg.num_samples
    return max(1, min(cfg.num_samples, n_samples - start))


def find_audio(inputs: str | Path | Sequence[str | Path], extensions: Iterable[str] | None = None,
               setting: str = "input") -> list[tuple[Path, str]]:
    """The files to classify.

    Args:
        inputs: A file, a directory (searched recursively) or a list of them.
        extensions: File name extensions (no dot, any case) taken from directories; ``None`` =
            every format :func:`~ser_lightning.data.audio.read_audio` decodes. Files named explicitly are always taken.
        setting: The setting named in messages (``input``, ``speaker_reference``).

    Returns:
        ``[(path, display_name)]`` in sorted order per input; a directory's files are shown
        relative to it.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no input, or no audio file found.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs or [])
    if not items:
        raise ValueError(f"{setting}=FILE_OR_DIR is required")
    exts = {e.lower().lstrip(".") for e in extensions} if extensions else AUDIO_EXTENSIONS
    found: list[tuple[Path, str]] = []
    for item in items:
        p = Path(str(item)).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower().lstrip(".") in exts)
            found += [(f, str(f.relative_to(p))) for f in files]
        elif p.is_file():
            found.append((p, str(item)))
        else:
            raise FileNotFoundError(f"{setting}={item}: no such file or directory")
    if not found:
        raise ValueError(f"{setting}={[str(i) for i in items]}: no audio files found (extensions {sorted(exts)})")
    return found


# ----------------------------------------------------------------------------------- prediction
@dataclass
class _Unit:
    """One reported span of a file (a window, or a speech segment with ``segment="vad"``), in wave samples."""

    start: int
    end: int
    speech_fraction: float | None
    starts: list[int]  # model windows inside the span, relative to ``start``; empty = not classified (no speech)
    probs: list[np.ndarray | None] = field(default_factory=list)


@dataclass
class _Pending:
    index: int
    wave: np.ndarray
    units: list[_Unit]
    offset: int = 0  # samples trimmed off the start (times are reported in the original file)

    def done(self) -> bool:
        return all(r is not None for u in self.units for r in u.probs)


def _units(wave: np.ndarray, offset: int, window: int, hop: int, segment: str, vad: VadSettings | None,
           speech: list[tuple[int, int]] | None) -> list[_Unit]:
    """Split a (possibly trimmed) wave into reported spans and the model windows inside them."""
    n = len(wave)
    if segment == "vad":
        return [_Unit(a, b, 1.0, window_starts(b - a, window, hop)) for a, b in speech or []]
    units = []
    for s in window_starts(n, window, hop):
        e = min(n, s + window)
        frac = None if speech is None else speech_fraction(speech, offset + s, offset + e)
        keep = frac is None or (frac > 0 and frac >= vad.min_speech_fraction)
        units.append(_Unit(s, e, frac, [0] if keep else []))
    return units


@dataclass(frozen=True)
class SpeakerStats:
    """A speaker's statistics for a speaker-normalised model (:func:`speaker_reference_statistics`).

    Attributes:
        mean: Feature-wise mean of the pooled hidden states ``(hidden_states, pooled_dim)``.
        sd: Feature-wise standard deviation (at least :data:`~ser_lightning.data.speaker_norm.SD_FLOOR`).
        files: Reference files used.
        windows: Model windows they gave (the number of embeddings behind the statistics).
    """

    mean: np.ndarray
    sd: np.ndarray
    files: int
    windows: int


def speaker_reference_statistics(
    reference: Sequence[tuple[Path | AudioArray, str]],
    model: LoadedModel,
    *,
    hop_s: float | None = None,
    trim: bool | None = None,
    trim_db: float | None = None,
    silence_dbfs: float = -60.0,
    batch_size: int = 16,
) -> SpeakerStats:
    """Mean and sd of the pooled hidden states of a speaker's reference recordings.

    Every reference recording goes through the prediction path (decoding, resampling, optional
    silence trimming, windows of the model's clip length every ``hop_s`` seconds); each window's
    pooled hidden states are one sample. In training the statistics came from all of a speaker's
    clips (about 60 per RAVDESS actor, every emotion in equal shares), so a reference should hold
    several recordings of the speaker, ideally not all of one emotion.

    Args:
        reference: ``[(path or AudioArray, display_name)]`` (see :func:`find_audio`).
        model: A speaker-normalised :class:`LoadedModel` (``speaker_norm=True``).
        hop_s: Seconds between window starts; ``None`` = half the model's clip.
        trim: Trim leading/trailing silence; ``None`` = as the model was trained.
        trim_db: Trimming threshold (dB below the loudest frame); ``None`` = the model's.
        silence_dbfs: All-silent threshold (dBFS).
        batch_size: Windows per forward pass.

    Returns:
        The :class:`SpeakerStats`.

    Raises:
        ValueError: the model is not speaker-normalised, a reference recording cannot be read (named),
            or the reference gives fewer than 2 windows (no spread to estimate).
    """
    if not model.speaker_norm or model.embed is None:
        raise ValueError(_reference_refused(model.source))
    cfg = model.audio_cfg
    hop_s = cfg.duration_s / 2 if hop_s is None else float(hop_s)
    if not 0 < hop_s <= cfg.duration_s:
        raise ValueError(f"hop_s={hop_s} must be in (0, {cfg.duration_s}] seconds (the model's window duration_s)")
    hop = max(1, int(round(hop_s * cfg.sample_rate)))
    trim = cfg.trim_silence if trim is None else bool(trim)
    trim_db = cfg.trim_db if trim_db is None else float(trim_db)
    windows, lengths = [], []
    for path, _ in reference:
        try:
            wave, _ = decode_mono(path, cfg.sample_rate, silence_dbfs)
        except AudioDecodeError as err:
            raise ValueError(f"speaker_reference: {err}") from None
        if trim:
            wave = trim_silence(wave, cfg.sample_rate, trim_db)
        starts = window_starts(len(wave), cfg.num_samples, hop)
        windows += [make_window(wave, s, cfg) for s in starts]
        lengths += [window_length(len(wave), s, cfg) for s in starts]
    if len(windows) < 2:
        raise ValueError(f"speaker_reference: {len(reference)} recording(s) gave {len(windows)} window(s); at least 2 "
                         "are needed to estimate the speaker's spread (give several recordings of the speaker)")
    pooled = np.concatenate([model.embed(np.stack(windows[i:i + batch_size]),
                                         np.asarray(lengths[i:i + batch_size]) if model.takes_lengths else None)
                             for i in range(0, len(windows), batch_size)])
    mean, sd = speaker_statistics(pooled)
    log.info("speaker reference: %d recording(s), %d window(s)", len(reference), len(windows))
    return SpeakerStats(mean, sd, len(reference), len(windows))


def predict_files(
    files: Sequence[tuple[Path, str]],
    model: LoadedModel,
    *,
    hop_s: float | None = None,
    batch_size: int = 16,
    trim: bool | None = None,
    trim_db: float | None = None,
    silence_dbfs: float = -60.0,
    vad: VadSettings | bool | Mapping[str, Any] | None = None,
    segment: str = "window",
    progress: bool = False,
    speaker_stats: SpeakerStats | None = None,
    labels: str | Sequence[str] | None = None,
    run: Callable[..., np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Classify files with sliding windows (or speech segments); bad files become error records, never exceptions.

    With voice activity detection (``vad``, :mod:`ser_lightning.inference.vad`), the detector runs
    on the whole decoded file first. ``segment="window"``: a window whose share of speech is below
    ``vad.min_speech_fraction`` (or zero) gets ``status="no speech"`` and no emotion, and the file's
    emotion is the mean over its speech windows only. ``segment="vad"``: the file is cut at the
    detector's speech segments instead of fixed windows (silence trimming is then not needed and
    not applied); each segment is classified (a segment longer than the model's clip by sliding
    windows inside it, a shorter one padded as in training) and reported with its start and end in
    seconds. A file without any speech window or segment, or all-silent, gets ``status="no speech"``.

    Args:
        files: ``[(path or AudioArray, display_name)]`` (see :func:`find_audio`).
        model: The :class:`LoadedModel`.
        hop_s: Hop between windows in seconds, in ``(0, duration_s]``; ``None`` = half the
            model's clip duration.
        batch_size: Windows per forward pass (windows of several files share a batch).
        trim: Trim leading/trailing silence; ``None`` = as the model was trained.
        trim_db: Trimming threshold in dB below the loudest 25 ms frame; ``None`` = the model's.
        silence_dbfs: Files whose peak is below this many dBFS are all-silent (an error without the
            detector, ``no speech`` with it).
        vad: Detector settings: a :class:`~ser_lightning.inference.vad.VadSettings`, a mapping of its
            fields, ``True`` (defaults) or ``None``/``False`` (no detection: every window is classified).
        segment: ``"window"`` (fixed sliding windows) or ``"vad"`` (speech segments; needs ``vad``).
        progress: Show a progress bar (stderr).
        speaker_stats: The speaker's statistics for a model trained with ``data.speaker_norm=true``
            (:func:`speaker_reference_statistics`); every window's pooled hidden states are
            standardised with them before the head. Required by such a model, refused by others.
        labels: Restrict the output to these classes (:func:`~ser_lightning.inference.adaptation.label_subset`:
            a label-set name or emotion names): every window's probabilities of those classes,
            renormalised; records then list only them (in the model's order). ``None``: all classes.
        run: Replaces the model's own ``(batch, lengths)`` → probabilities function (used by
            :func:`predict_set` for its two passes); ``None``: the model's.

    Returns:
        One record per file, in input order: ``file``, ``path``, ``status`` (``ok``/``no speech``/``error``),
        ``error``, ``duration_s`` (the file), ``analysed_s`` (after silence trimming),
        ``source_sample_rate`` (Hz), ``channels``, ``speech_fraction`` (share of the file the detector
        marks as speech; ``None`` without it), ``n_windows``,
        ``label``, ``confidence``, ``probabilities`` (label → mean probability of the classified windows) and
        ``windows`` (``start_s``, ``end_s``, ``status``, ``speech_fraction``, ``label``, ``confidence``,
        ``probabilities``; with ``segment="vad"`` one entry per speech segment).

    Raises:
        ValueError: ``hop_s``, ``batch_size``, ``trim_db``, ``segment`` or a ``vad`` setting out of range;
            ``segment="vad"`` with the detector off; a model whose output width differs from its label count;
            a speaker-normalised model without ``speaker_stats``, or ``speaker_stats`` for a plain model;
            a requested label the model does not have.
        RuntimeError: the model fails on a batch.
    """
    cfg = model.audio_cfg
    keep = list(range(len(model.labels))) if labels is None else label_subset(labels, model.labels, model.source)
    out_labels = [model.labels[i] for i in keep]
    if model.speaker_norm and speaker_stats is None:
        raise ValueError(_reference_required(model.source))
    if speaker_stats is not None and not model.speaker_norm:
        raise ValueError(_reference_refused(model.source))
    if run is None and speaker_stats is not None:
        def run(batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            return model.run_pooled(standardise(model.embed(batch, lengths), speaker_stats.mean, speaker_stats.sd))
    elif run is None:
        run = model.run
    window = cfg.num_samples
    hop_s = cfg.duration_s / 2 if hop_s is None else float(hop_s)
    if not 0 < hop_s <= cfg.duration_s:
        raise ValueError(f"hop_s={hop_s} must be in (0, {cfg.duration_s}] seconds (the model's window duration_s)")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    trim = cfg.trim_silence if trim is None else bool(trim)
    trim_db = cfg.trim_db if trim_db is None else float(trim_db)
    if trim_db <= 0:
        raise ValueError(f"trim_db={trim_db} must be positive (dB below the loudest frame)")
    vad_cfg = VadSettings.from_any(vad)
    vad_on = vad_cfg.enabled
    if segment not in SEGMENT_MODES:
        raise ValueError(f"segment={segment!r} is not one of {list(SEGMENT_MODES)}")
    if segment == "vad" and not vad_on:
        raise ValueError("segment=vad cuts files at speech segments and needs the voice activity detector "
                         "(vad.enabled=true)")
    if segment == "vad":
        trim = False
    hop = max(1, int(round(hop_s * cfg.sample_rate)))
    records: list[dict[str, Any]] = []
    pending: list[_Pending] = []
    queue: list[tuple[_Unit, np.ndarray, int]] = []  # (span, its samples, window index) not yet computed

    def flush(all_: bool) -> None:
        while queue and (all_ or len(queue) >= batch_size):
            chunk, queue[:] = queue[:batch_size], queue[batch_size:]
            batch = np.stack([make_window(seg, u.starts[i], cfg) for u, seg, i in chunk])
            try:
                if model.takes_lengths:  # whole-clip model: pooling ignores a short window's padding
                    lengths = np.asarray([window_length(len(seg), u.starts[i], cfg) for u, seg, i in chunk])
                    probs = np.asarray(run(batch, lengths), dtype=np.float64)
                else:
                    probs = np.asarray(run(batch), dtype=np.float64)
            except Exception as err:  # a model failure is not a per-file problem: stop here
                raise RuntimeError(f"model {model.source} failed on a batch of shape {batch.shape}: {err}") from err
            if probs.shape != (len(chunk), len(model.labels)):
                raise ValueError(f"ckpt_path={model.source}: the model returned shape {probs.shape} for {len(chunk)} windows, "
                                 f"but its card lists {len(model.labels)} labels")
            if labels is not None:
                probs = restrict_probabilities(probs, keep)
            for (u, _, i), row in zip(chunk, probs):
                u.probs[i] = row
        for p in [p for p in pending if p.done()]:
            _finish(records[p.index], p, out_labels, cfg.sample_rate)
            pending.remove(p)

    bar, task = None, None
    if progress:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=True)
        bar.start()
        task = bar.add_task("files", total=len(files))
    try:
        for path, display in files:
            where = path.name if isinstance(path, AudioArray) else str(Path(path).resolve())
            rec: dict[str, Any] = {"file": display, "path": where, "status": "ok", "error": "",
                                   "duration_s": None, "source_sample_rate": None, "channels": None,
                                   "analysed_s": None, "speech_fraction": None, "n_windows": 0, "label": None,
                                   "confidence": None, "probabilities": None, "windows": []}
            records.append(rec)
            try:
                wave, info = decode_mono(path, cfg.sample_rate, silence_dbfs)
                rec.update(duration_s=round(info["duration_s"], 4), source_sample_rate=info["source_sample_rate"],
                           channels=info["channels"])
                speech = speech_segments(wave, cfg.sample_rate, vad_cfg) if vad_on else None
                if speech is not None:
                    rec["speech_fraction"] = round(speech_fraction(speech, 0, len(wave)), 4)
                offset = 0
                if trim:
                    trimmed = trim_silence(wave, cfg.sample_rate, trim_db)
                    # trim_silence returns a slice (a view) of its input: its offset is where the kept part starts
                    if np.shares_memory(trimmed, wave):
                        offset = (trimmed.ctypes.data - wave.ctypes.data) // wave.itemsize
                    wave = trimmed
                rec["analysed_s"] = round(len(wave) / cfg.sample_rate, 4)
            except SilentAudioError as err:
                if not vad_on:
                    _record_error(rec, err, path)
                else:  # digital silence has no speech: an answer, not a failure
                    rec.update(status=NO_SPEECH, speech_fraction=0.0, duration_s=round(err.info["duration_s"], 4),
                               source_sample_rate=err.info["source_sample_rate"], channels=err.info["channels"],
                               analysed_s=0.0)
            except AudioDecodeError as err:
                _record_error(rec, err, path)
            else:
                units = _units(wave, offset, window, hop, segment, vad_cfg, speech)
                for u in units:
                    u.probs = [None] * len(u.starts)
                p = _Pending(len(records) - 1, wave, units, offset)
                pending.append(p)
                for u in units:
                    seg = wave[u.start : u.end]
                    queue.extend((u, seg, i) for i in range(len(u.starts)))
                flush(all_=False)
            if bar is not None:
                bar.advance(task)
        flush(all_=True)
    finally:
        if bar is not None:
            bar.stop()
    return records


def _digest(batch: np.ndarray, lengths: np.ndarray | None) -> str:
    """A fingerprint of one model batch (its samples and valid lengths)."""
    h = hashlib.blake2b(np.ascontiguousarray(batch).tobytes(), digest_size=16)
    if lengths is not None:
        h.update(np.ascontiguousarray(lengths, dtype=np.int64).tobytes())
    return h.hexdigest()


def _answer(rec: dict[str, Any]) -> dict[str, Any]:
    return {"label": rec["label"], "confidence": rec["confidence"], "probabilities": rec["probabilities"]}


def _set_probabilities(target: dict[str, Any], probs: np.ndarray, labels: Sequence[str]) -> None:
    target.update(label=labels[int(np.argmax(probs))], confidence=float(np.max(probs)),
                  probabilities={c: float(v) for c, v in zip(labels, probs)})


def predict_set(
    files: Sequence[tuple[Path | AudioArray, str]],
    model: LoadedModel,
    *,
    labels: str | Sequence[str] | None = None,
    adapt: str = "none",
    adapt_prior: str = "none",
    adapt_min_clips: int = DEFAULT_MIN_CLIPS,
    **settings: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Classify a set of recordings, optionally restricted to some classes and adapted to the set without labels.

    The order of :mod:`ser_lightning.inference.adaptation`: feature adaptation, label restriction, prior
    correction.

    * ``adapt="set"`` (transductive): two passes over the files. The first computes every classified
      window's pooled encoder states (and the plain answers, with the checkpoint's training statistics);
      their mean and sd then standardise the head's input in the second pass, which replays the stored
      states (the same windows in the same batches; the encoder does not run twice). Fewer than
      ``adapt_min_clips`` classified files (a single clip, say): a note, and the training statistics.
    * ``labels``: each window's probabilities restricted to those classes and renormalised
      (:func:`predict_files`); a file's answer is the mean over its windows.
    * ``adapt_prior="em"`` (transductive): the class prior of the set is estimated by EM over the files'
      (restricted) probabilities (:func:`~ser_lightning.inference.adaptation.em_prior_correction`,
      starting from the model's training prior restricted to the kept classes), and every file's and
      window's probabilities are re-weighted to it (a file's corrected probabilities are its corrected
      mean, not the mean of corrected windows). Fewer than ``adapt_min_clips`` classified files: a note,
      no correction.

    With any adaptation applied, every classified record keeps its unadapted answer under ``plain``
    (``label``, ``confidence``, ``probabilities``; label restriction applied).

    Args:
        files: ``[(path or AudioArray, display_name)]``.
        model: The :class:`LoadedModel`.
        labels: Classes to keep (see :func:`predict_files`), or ``None``.
        adapt: ``none`` or ``set``.
        adapt_prior: ``none`` or ``em``.
        adapt_min_clips: The smallest set that is adapted.
        **settings: Keyword settings of :func:`predict_files` (``hop_s``, ``batch_size``, ``trim``,
            ``trim_db``, ``silence_dbfs``, ``vad``, ``segment``, ``progress``, ``speaker_stats``).

    Returns:
        ``(records, info)``: the :func:`predict_files` records, and ``{"labels" (the output classes),
        "adaptation" (the row name: ``plain`` or what was applied), "transductive", "adapt": {"mode",
        "applied", "clips", "windows"}, "prior": {"mode", "applied", "training_prior", "estimated_prior",
        "iterations"}, "notes"}``.

    Raises:
        ValueError: a bad setting; ``adapt=set`` with a model that cannot be adapted (an exported model,
            a speaker-normalised or non-encoder checkpoint), ``adapt_prior=em`` without a training prior,
            or a requested label the model does not have; see also :func:`predict_files`.
    """
    adapt, prior, min_clips = check_adapt(adapt, adapt_prior, adapt_min_clips, allowed=("none", "set"))
    keep = list(range(len(model.labels))) if labels is None else label_subset(labels, model.labels, model.source)
    out_labels = [model.labels[i] for i in keep]
    if adapt == "set" and model.adapt_refusal:
        raise ValueError(model.adapt_refusal)
    if prior == "em" and model.training_prior is None:
        raise ValueError(model.prior_refusal or "adapt_prior=em: the model's training prior is unknown")
    notes: list[str] = []
    info: dict[str, Any] = {"labels": out_labels, "adapt": {"mode": adapt, "applied": False},
                            "prior": {"mode": prior, "applied": False}, "notes": notes}

    def too_few(what: str, n: int) -> None:
        note = (f"{what}: {n} file(s) classified, fewer than adapt_min_clips={min_clips}: "
                + ("the training statistics are used" if what == "adapt" else "the prior is not corrected"))
        log.warning("%s", note)
        notes.append(note)

    plain_records: list[dict[str, Any]] | None = None
    if adapt == "set" and len(files) >= min_clips:
        captured: list[tuple[str, np.ndarray]] = []

        def capture(batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            pooled = model.embed(batch, lengths)
            captured.append((_digest(batch, lengths), pooled))
            return model.run_pooled(pooled)

        plain_records = predict_files(files, model, labels=labels, run=capture, **settings)
        n_ok = sum(r["status"] == "ok" for r in plain_records)
        if n_ok < min_clips:
            too_few("adapt", n_ok)
            records, plain_records = plain_records, None
        else:
            pooled_all = np.concatenate([p for _, p in captured])
            stats = speaker_statistics(pooled_all)
            replay = iter(captured)

            def adapted(batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
                digest, pooled = next(replay, (None, None))
                if digest != _digest(batch, lengths):  # not the first pass's batch: embed it again
                    pooled = model.embed(batch, lengths)
                return model.run_pooled(pooled, stats)

            records = predict_files(files, model, labels=labels, run=adapted, **settings)
            info["adapt"].update(applied=True, clips=n_ok, windows=int(len(pooled_all)))
    else:
        if adapt == "set":
            too_few("adapt", len(files))
        records = predict_files(files, model, labels=labels, **settings)
    ok = [i for i, r in enumerate(records) if r["status"] == "ok"]
    if prior == "em":
        train = np.asarray(model.training_prior, dtype=np.float64)[keep]
        train = train / train.sum()
        info["prior"]["training_prior"] = dict(zip(out_labels, train.tolist()))
        if len(ok) < min_clips:
            too_few("adapt_prior=em", len(ok))
        else:
            if plain_records is None:
                plain_records = [dict(_answer(r), status=r["status"]) for r in records]
            fit = em_prior_correction(np.asarray([[records[i]["probabilities"][c] for c in out_labels] for i in ok]), train)
            for i, q in zip(ok, fit.probs):
                _set_probabilities(records[i], q, out_labels)
                for w in records[i]["windows"]:
                    if w.get("probabilities"):
                        p = np.asarray([[w["probabilities"][c] for c in out_labels]])
                        _set_probabilities(w, adjust_to_prior(p, train, fit.prior)[0], out_labels)
            info["prior"].update(applied=True, estimated_prior=dict(zip(out_labels, fit.prior.tolist())),
                                 iterations=fit.iterations, converged=fit.converged)
    applied_adapt = "set" if info["adapt"]["applied"] else "none"
    applied_prior = "em" if info["prior"]["applied"] else "none"
    info["adaptation"] = adaptation_name(applied_adapt, applied_prior)
    info["transductive"] = applied_adapt != "none" or applied_prior != "none"
    if info["transductive"] and plain_records is not None:
        for i in ok:
            records[i]["plain"] = _answer(plain_records[i])
    return records, info


def _record_error(rec: dict[str, Any], err: Exception, path: Any) -> None:
    msg, shown = str(err), path.name if isinstance(path, AudioArray) else str(path)
    rec.update(status="error", error=msg[len(shown) + 2:] if msg.startswith(f"{shown}: ") else msg)
    log.warning("%s", msg)


def _finish(rec: dict[str, Any], p: _Pending, labels: list[str], sample_rate: int) -> None:
    """Fill a file record from its spans' window probabilities (aggregate = mean of the classified windows)."""
    o = p.offset
    rows = [r for u in p.units for r in u.probs]
    rec["n_windows"] = len(p.units)
    windows = []
    for u in p.units:
        win: dict[str, Any] = {"start_s": round((o + u.start) / sample_rate, 4), "end_s": round((o + u.end) / sample_rate, 4),
                               "status": "ok" if u.probs else NO_SPEECH,
                               "speech_fraction": None if u.speech_fraction is None else round(u.speech_fraction, 4),
                               "label": None, "confidence": None, "probabilities": None}
        if u.probs:
            mean = np.stack(u.probs).mean(axis=0)
            win.update(label=labels[int(mean.argmax())], confidence=float(mean.max()),
                       probabilities={c: float(v) for c, v in zip(labels, mean)})
        windows.append(win)
    rec["windows"] = windows
    if not rows:
        rec["status"] = NO_SPEECH
        return
    mean = np.stack(rows).mean(axis=0)
    rec["label"] = labels[int(mean.argmax())]
    rec["confidence"] = float(mean.max())
    rec["probabilities"] = {c: float(v) for c, v in zip(labels, mean)}


# -------------------------------------------------------------------------------------- outputs
def write_outputs(records: list[dict[str, Any]], out_dir: str | Path, header: dict[str, Any]) -> dict[str, Path]:
    """Write ``predictions.json``, ``predictions.csv`` and ``windows.csv``.

    Args:
        records: Output of :func:`predict_files`.
        out_dir: Directory (created).
        header: Model and settings, stored as ``model`` in the JSON; ``labels`` are the output classes (the
            CSV's ``p_<class>`` columns). Records adapted by :func:`predict_set` add ``plain_label`` and
            ``plain_confidence`` columns to ``predictions.csv``.

    Returns:
        ``{"json", "csv", "windows_csv"}`` paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(header["labels"])
    count = {k: sum(r["status"] == k for r in records) for k in ("ok", NO_SPEECH, "error")}
    doc = {"model": header, "summary": {"files": len(records), "ok": count["ok"], "no_speech": count[NO_SPEECH],
                                        "errors": count["error"]},
           "files": records}
    paths = {"json": out / "predictions.json", "csv": out / "predictions.csv", "windows_csv": out / "windows.csv"}
    paths["json"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    cols = ["file", "status", "error", "label", "confidence", "speech_fraction", "n_windows", "duration_s",
            "analysed_s", "source_sample_rate", "channels", "path"]
    adapted = any("plain" in r for r in records)  # predict_set: the unadapted answer beside the adapted one
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols + [f"p_{c}" for c in labels] + (["plain_label", "plain_confidence"] if adapted else []))
        for r in records:
            probs = r["probabilities"] or {}
            plain = r.get("plain") or {}
            w.writerow([_fmt(r.get(c)) for c in cols] + [_fmt(probs.get(c)) for c in labels]
                       + ([_fmt(plain.get("label")), _fmt(plain.get("confidence"))] if adapted else []))
    with open(paths["windows_csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "window", "start_s", "end_s", "status", "speech_fraction", "label", "confidence"]
                   + [f"p_{c}" for c in labels])
        for r in records:
            for i, win in enumerate(r["windows"]):
                probs = win.get("probabilities") or {}
                w.writerow([r["file"], i, win["start_s"], win["end_s"], win.get("status", "ok"),
                            _fmt(win.get("speech_fraction")), _fmt(win["label"]), _fmt(win["confidence"])]
                           + [_fmt(probs.get(c)) for c in labels])
    return paths


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v

