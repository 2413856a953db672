"""A model ready for prediction, whatever its format: :func:`load_model` → :class:`LoadedModel`.

``MODEL`` is a ``train.py`` checkpoint (``.ckpt``, run with PyTorch), or a file written by ``export.py``: ``.onnx``
(run with ONNX Runtime) or ``.torchscript.pt`` (TorchScript); the exported files read their labels and
preprocessing from the model card next to them (``<name>.card.json``) or, without it, from the card embedded in
the file. A checkpoint's labels, audio settings and capabilities are the facts it carries
(:mod:`ser_lightning.inference.checkpoint`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ser_lightning.data.audio import (
    AudioConfig,
)
from ser_lightning.data.speaker_norm import protocol_name
from ser_lightning.inference.adaptation import (
    adaptable,
    feature_statistics_used,
    training_prior,
)
from ser_lightning.inference.card import ONNX_CARD_KEY, TS_CARD_FILE, audio_config_from_card
from ser_lightning.inference.checkpoint import (
    ProbabilityModel,
    load_for_prediction,
    read_checkpoint,
    stored_datamodule_hparams,
)
from ser_lightning.inference.default_model import resolve_model_path
from ser_lightning.inference.runners import OnnxRunner
from ser_lightning.models.facts import network_facts

log = logging.getLogger(__name__)


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


def reference_required(source: Any) -> str:
    """The refusal of a speaker-normalised model asked to predict without a speaker reference."""
    return (f"ckpt_path={source} was trained with data.speaker_norm=true and needs the speaker's statistics: pass "
            "speaker_reference=[a.wav,b.wav,...] (or a folder) with several recordings of the same speaker")


def reference_refused(source: Any) -> str:
    """The refusal of a speaker reference given to a plain model."""
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


def _checkpoint_prior(classifier: Any, path: Path,
                      stored: dict[str, Any] | None = None) -> tuple[np.ndarray | None, str | None]:
    """The checkpoint's training prior (:func:`~ser_lightning.inference.adaptation.training_prior`) or why not;
    ``stored``: its datamodule settings (``None``: read from ``path``)."""
    hp = classifier.hparams
    try:
        if stored is None:
            stored = stored_datamodule_hparams(path)
        return training_prior(hp.get("class_counts"), hp.get("class_weights"), stored.get("sampler"),
                              len(classifier.class_names), stored.get("corpus_weights"),
                              hp.get("corpus_class_counts")), None
    except (ValueError, OSError) as err:
        return None, f"adapt_prior=em: ckpt_path={path}: {err}"


def _speaker_norm_model(classifier: Any, audio_cfg: AudioConfig, path: Path, device: torch.device,
                        stored: dict[str, Any] | None = None) -> LoadedModel:
    """A :class:`LoadedModel` of a checkpoint trained with ``data.speaker_norm=true`` (split at the pooled states)."""
    network = classifier.network
    if not network_facts(network).pooled_split:
        raise ValueError(f"ckpt_path={path}: trained with data.speaker_norm=true, but its network "
                         f"{type(network).__name__} has no pooled hidden states to standardise")
    embed, run_pooled = _pooled_functions(classifier, device)

    def refuse(batch: np.ndarray) -> np.ndarray:
        raise ValueError(reference_required(path))

    prior, why = _checkpoint_prior(classifier, path, stored)
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
        classifier, audio_cfg, stored = load_for_prediction(path, map_location=dev, checkpoint=read_checkpoint(path))
        if stored.get("speaker_norm"):
            return _speaker_norm_model(classifier, audio_cfg, path, dev, stored)
        module = ProbabilityModel.from_classifier(classifier).to(dev)
        why = adaptable(classifier.network)
        embed, run_pooled = _pooled_functions(classifier, dev) if why is None else (None, None)
        prior, prior_why = _checkpoint_prior(classifier, path, stored)
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
