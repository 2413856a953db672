"""Loading a ``train.py`` checkpoint safely: its datamodule settings, the classifier and its audio preprocessing.

The one place that reads a checkpoint: ``train.py`` (best score, resume step), ``eval.py``, ``predict.py``,
``export.py`` and the checkpoint ensemble use these functions. Prediction (:func:`load_for_prediction`) reads the
file once and rebuilds the frontend and the network from the stored settings without Lightning (the
:class:`PredictionClassifier`); training and evaluation rebuild the ``SERClassifier`` (:func:`load_classifier`). Every read is weights-only
(``torch.load(..., weights_only=True)``: tensors, numbers, strings and plain containers), so a checkpoint from
a stranger cannot run code: one whose pickle names any other callable (a command, a class) is refused with one
line naming the file, before anything in it runs. Rebuilding a classifier fetches no pretrained weights (hub,
packaged files): the checkpoint's state dict replaces them
(:func:`ser_lightning.models.pretrained.weights_from_checkpoint`), except in a head-only checkpoint, which
leaves out a frozen encoder's weights and takes them from the installed package after checking their
SHA-256 (:mod:`ser_lightning.modules.frozen_encoder`).
"""

from __future__ import annotations

import pickle
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ser_lightning.data.audio import AudioConfig, audio_config_from_hparams
from ser_lightning.models.facts import network_facts
from ser_lightning.models.weights_source import weights_from_checkpoint


def _refusal(path: Path, err: Exception) -> ValueError:
    why = " ".join(str(err).split())
    if "Unsupported global" in why or "weights_only" in why.lower():
        start = why.find("Unsupported global")
        detail = why[start:start + 160] if start >= 0 else why[:160]
        return ValueError(
            f"{path}: refusing to load: the checkpoint's pickle names code, not only tensors and plain values "
            f"({detail}); loading it could run that code. Load only checkpoints from a source you trust"
        )
    return ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {why[:160]})")


def _unfit(path: Path, err: Exception) -> ValueError:
    """One line naming the file, for a checkpoint that cannot be rebuilt (bad settings, a changed encoder, tensors
    that do not fit)."""
    why = " ".join(str(err).split())
    return ValueError(f"{path}: {why[:600]}")


def _weights_source(checkpoint: dict[str, Any]):
    """Where a rebuilt network's pretrained part comes from: the installed weights for a head-only checkpoint (they
    are not in the file; their digest is checked on loading), else nowhere (the state dict replaces them:
    :func:`~ser_lightning.models.weights_source.weights_from_checkpoint`)."""
    from ser_lightning.modules.frozen_encoder import FROZEN_ENCODER_KEY

    return nullcontext() if FROZEN_ENCODER_KEY in checkpoint else weights_from_checkpoint()


def _check_clip_length(path: Path, num_samples: int | None, audio_cfg: AudioConfig) -> None:
    """Refuse a classifier whose stored clip length differs from its datamodule's (``ValueError``, one line)."""
    if num_samples and int(num_samples) != audio_cfg.num_samples:
        raise ValueError(f"ckpt_path={path}: model num_samples={num_samples} differs from the datamodule's "
                         f"{audio_cfg.num_samples} (sample_rate {audio_cfg.sample_rate} Hz × {audio_cfg.duration_s} s)")


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint file without running pickled code (``torch.load(..., weights_only=True)``).

    Args:
        path: A ``.ckpt``/``.pt`` file.
        map_location: Where tensors go (default CPU).

    Returns:
        The checkpoint dictionary.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the pickle refers to code (a class or function beyond tensors and plain containers), or
            the file is not a checkpoint; one line naming the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as err:
        raise _refusal(path, err) from None


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu",
                    checkpoint: dict[str, Any] | None = None):
    """The ``SERClassifier`` of a checkpoint, rebuilt from the file read once, weights-only, with no pretrained-weight
    fetching.

    The file is read with :func:`read_checkpoint` (so a malicious one fails with one line), unless the caller
    passes what it read already (``checkpoint``); the classifier is then built from the stored
    hyper-parameters, its ``on_load_checkpoint`` runs and the state dict loads strictly, as Lightning's
    ``load_from_checkpoint`` does, without reading the file again. A head-only checkpoint (a frozen
    encoder's weights left out, their SHA-256 recorded: :mod:`ser_lightning.modules.frozen_encoder`) is
    built with its encoder's installed weights, which must have the recorded digest; the rest of its
    tensors load strictly.

    Args:
        path: A checkpoint written by ``train.py`` (or its head-only copy); named in errors.
        map_location: Where the model goes.
        checkpoint: The file's dictionary, when the caller has read it (:func:`read_checkpoint`).

    Returns:
        The ``SERClassifier`` in eval mode.

    Raises:
        FileNotFoundError, ValueError: see :func:`read_checkpoint`.
        ValueError: no model settings in the file, a head-only checkpoint whose recorded encoder digest differs
            from the installed encoder weights', or tensors that do not fit the model built from its settings
            (one line naming the file).
    """
    import inspect

    from ser_lightning.modules.classifier import SERClassifier

    path = Path(path).expanduser()
    ckpt = checkpoint if checkpoint is not None else read_checkpoint(path, map_location="cpu")
    stored = dict(ckpt.get(SERClassifier.CHECKPOINT_HYPER_PARAMS_KEY) or {})
    if not stored or "state_dict" not in ckpt:
        raise ValueError(f"{path}: checkpoint holds no classifier settings or weights (was it written by train.py?)")
    accepted = inspect.signature(SERClassifier.__init__).parameters
    settings = {k: v for k, v in stored.items() if k in accepted and k != "built"}
    try:
        with _weights_source(ckpt):
            model = SERClassifier(**settings)
        model.on_load_checkpoint(ckpt)  # a head-only file: its encoder's installed weights, digest checked
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (ValueError, RuntimeError) as err:  # bad settings, a changed encoder, tensors that do not fit
        raise _unfit(path, err) from None
    return model.to(map_location).eval()


def stored_datamodule_hparams(ckpt_path: str | Path, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The datamodule settings a ``train.py`` checkpoint stores (``datamodule_hyper_parameters``).

    Args:
        ckpt_path: A Lightning checkpoint written by ``train.py`` (named in errors).
        checkpoint: The file's dictionary, when the caller has read it (:func:`read_checkpoint`); else read here.

    Returns:
        The ``SERDataModule`` hyper-parameters (audio settings, corpora, label set, split).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the checkpoint holds no datamodule settings, or it is unsafe (see :func:`read_checkpoint`).
    """
    path = Path(ckpt_path).expanduser()
    stored = checkpoint if checkpoint is not None else read_checkpoint(path)
    hp = dict(stored.get("datamodule_hyper_parameters") or {})
    if not hp:
        raise ValueError(f"{path}: checkpoint holds no datamodule settings (was it written by train.py?)")
    return hp


class PredictionClassifier(nn.Module):
    """A checkpoint's frontend + network, rebuilt from its stored settings without Lightning (for prediction).

    It has what prediction reads of a ``SERClassifier``: ``frontend``, ``network``, ``class_names``, ``hparams``
    (the stored hyper-parameters, a plain dict) and the same ``forward``; nothing of training (loss, metrics,
    optimiser).

    Args:
        frontend: Waveform → features (the checkpoint's).
        network: Features → logits.
        class_names: Class names in output order.
        hparams: The checkpoint's ``hyper_parameters``.

    Shapes:
        ``forward``: ``(batch, time)`` float32 waveform (and ``(batch,)`` valid lengths for a network that reads
        whole clips) → ``(batch, n_classes)`` logits.
    """

    def __init__(self, frontend: nn.Module, network: nn.Module, class_names: list[str],
                 hparams: dict[str, Any]) -> None:
        super().__init__()
        self.frontend = frontend
        self.network = network
        self.class_names = list(class_names)
        self.hparams = dict(hparams)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, n_classes)``; ``lengths`` goes to a network that reads whole clips."""
        if lengths is not None and network_facts(self.network).whole_clips:
            return self.network(self.frontend(wave), lengths)
        return self.network(self.frontend(wave))


def load_for_prediction(path: str | Path, map_location: str | torch.device = "cpu",
                        checkpoint: dict[str, Any] | None = None) -> tuple[PredictionClassifier, AudioConfig, dict[str, Any]]:
    """Load a ``train.py`` checkpoint for prediction: one read of the file, no Lightning.

    The frontend and the network are built from the stored ``model`` / ``features`` settings as
    ``SERClassifier.__init__`` builds them (:func:`ser_lightning.models.build_network`; pretrained weights are not
    fetched, the state dict replaces them; a head-only checkpoint's encoder is the installed one, its SHA-256
    checked: :func:`~ser_lightning.modules.frozen_encoder.restore_frozen_encoder`), the training corpora's
    statistics are set (``model.norm_stats=per_corpus``), and the stored tensors load strictly: the same numbers
    as :func:`load_classifier` (tests/test_predict_imports.py).

    Args:
        path: A checkpoint written by ``train.py`` (or its head-only copy).
        map_location: Where the module goes.
        checkpoint: The file's dictionary when the caller has read it already (:func:`read_checkpoint`).

    Returns:
        ``(classifier in eval mode, audio preprocessing, the datamodule settings)``.

    Raises:
        FileNotFoundError, ValueError: see :func:`read_checkpoint`; ValueError also for a checkpoint without
            datamodule settings, a clip length that differs from the datamodule's, a head-only checkpoint whose
            encoder digest differs from the installed weights', or tensors that do not fit the model built from
            its settings (one line naming the file).
    """
    from ser_lightning.models.builder import build_network
    from ser_lightning.modules.frozen_encoder import restore_frozen_encoder

    path = Path(path).expanduser()
    ckpt = checkpoint if checkpoint is not None else read_checkpoint(path)
    dm_hp = stored_datamodule_hparams(path, ckpt)
    audio_cfg = audio_config_from_hparams(dm_hp)
    hp = dict(ckpt.get("hyper_parameters") or {})
    try:
        model, features, class_names = dict(hp["model"]), dict(hp["features"]), list(hp["class_names"])
    except KeyError as err:
        raise ValueError(f"{path}: checkpoint holds no {err.args[0]} hyper-parameter (was it written by train.py?)") from None
    num_samples = hp.get("num_samples")
    _check_clip_length(path, num_samples, audio_cfg)
    try:
        with _weights_source(ckpt):
            frontend, network = build_network(model, features, len(class_names), num_samples)
        classifier = PredictionClassifier(frontend, network, class_names, hp)
        if hp.get("corpus_stats"):
            from ser_lightning.modules.norm_stats import pooled_stats

            pooled = pooled_stats(hp["corpus_stats"])
            encoder_frontend = network.encoder.frontend
            encoder_frontend.norm_mean, encoder_frontend.norm_std = pooled["mean"], pooled["sd"]
        state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith(("frontend.", "network."))}
        restore_frozen_encoder({**ckpt, "state_dict": state}, classifier)
        classifier.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError, KeyError) as err:
        raise _unfit(path, err) from None
    return classifier.to(map_location).eval(), audio_cfg, dm_hp


class ProbabilityModel(nn.Module):
    """Frontend + network + softmax of a :class:`~ser_lightning.modules.classifier.SERClassifier`.

    Args:
        frontend: The classifier's feature frontend (waveform → features).
        network: The classifier's network (features → logits).

    Shapes:
        ``(batch, num_samples)`` float32 waveform → ``(batch, n_classes)`` float32 probabilities
        (rows sum to 1).
    """

    def __init__(self, frontend: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.network = network

    @classmethod
    def from_classifier(cls, classifier: nn.Module) -> ProbabilityModel:
        """Wrap a classifier's ``frontend`` and ``network`` (shared, not copied), in eval mode."""
        return cls(classifier.frontend, classifier.network).eval()

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class probabilities ``(batch, n_classes)`` from waveforms ``(batch, num_samples)``.

        ``lengths`` ``(batch,)`` (valid samples per row) goes to networks that read whole clips (the
        encoder models, trained with ``data.clip_length=whole``), so that their pooling ignores the
        zero padding as in training; other networks ignore it.
        """
        if lengths is not None and network_facts(self.network).whole_clips:
            return torch.softmax(self.network(self.frontend(waveform), lengths).float(), dim=-1)
        return torch.softmax(self.network(self.frontend(waveform)).float(), dim=-1)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, AudioConfig]:
    """Load a ``train.py`` checkpoint: the classifier (eval mode) and its audio preprocessing.

    Args:
        path: Lightning checkpoint of a ``SERClassifier`` written by ``train.py``.
        map_location: Device the weights are loaded onto.

    Returns:
        ``(classifier, audio_cfg)`` (:func:`open_checkpoint` also gives the datamodule settings).

    Raises:
        FileNotFoundError: no such file.
        ValueError: see :func:`open_checkpoint`.
    """
    model, audio_cfg, _ = open_checkpoint(path, map_location)
    return model, audio_cfg


def open_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, AudioConfig, dict[str, Any]]:
    """Read a ``train.py`` checkpoint once: the classifier (eval mode), its audio preprocessing and the
    datamodule settings it was trained with.

    Args:
        path: Lightning checkpoint of a ``SERClassifier`` written by ``train.py``.
        map_location: Device the weights are loaded onto.

    Returns:
        ``(classifier, audio_cfg, datamodule_hparams)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the checkpoint holds no datamodule settings, or its classifier's clip length
            (``num_samples``) differs from the datamodule's ``sample_rate × duration_s``.
    """
    path = Path(path).expanduser()
    ckpt = read_checkpoint(path)
    dm_hp = stored_datamodule_hparams(path, ckpt)
    audio_cfg = audio_config_from_hparams(dm_hp)
    model = load_classifier(path, map_location=map_location, checkpoint=ckpt)
    _check_clip_length(path, model.hparams.get("num_samples"), audio_cfg)
    return model, audio_cfg, dm_hp
