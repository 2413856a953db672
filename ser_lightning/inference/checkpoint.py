"""Loading a ``train.py`` checkpoint: its datamodule settings, the classifier and its audio preprocessing.

The one place that reads a checkpoint for inference: ``eval.py``, ``predict.py``, ``export.py``
and the checkpoint ensemble use these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ser_lightning.data.audio import AudioConfig
from ser_lightning.data.datamodule import audio_config_from_hparams


def stored_datamodule_hparams(ckpt_path: str | Path) -> dict[str, Any]:
    """The datamodule settings a ``train.py`` checkpoint stores (``datamodule_hyper_parameters``).

    Args:
        ckpt_path: A Lightning checkpoint written by ``train.py``.

    Returns:
        The ``SERDataModule`` hyper-parameters (audio settings, corpora, label set, split).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the checkpoint holds no datamodule settings.
    """
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    stored = torch.load(path, map_location="cpu", weights_only=False)
    hp = dict(stored.get("datamodule_hyper_parameters") or {})
    if not hp:
        raise ValueError(f"{path}: checkpoint holds no datamodule settings (was it written by train.py?)")
    return hp


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

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(batch, n_classes)`` from waveforms ``(batch, num_samples)``."""
        return torch.softmax(self.network(self.frontend(waveform)).float(), dim=-1)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, AudioConfig]:
    """Load a ``train.py`` checkpoint: the classifier (eval mode) and its audio preprocessing.

    Args:
        path: Lightning checkpoint of a ``SERClassifier`` written by ``train.py``.
        map_location: Device the weights are loaded onto.

    Returns:
        ``(classifier, audio_cfg)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the checkpoint holds no datamodule settings, or its classifier's clip length
            (``num_samples``) differs from the datamodule's ``sample_rate × duration_s``.
    """
    from ser_lightning.modules.classifier import SERClassifier

    path = Path(path).expanduser()
    dm_hp = stored_datamodule_hparams(path)
    audio_cfg = audio_config_from_hparams(dm_hp)
    model = SERClassifier.load_from_checkpoint(path, map_location=map_location).eval()
    num_samples = model.hparams.get("num_samples")
    if num_samples and int(num_samples) != audio_cfg.num_samples:
        raise ValueError(f"ckpt={path}: model num_samples={num_samples} differs from the datamodule's "
                         f"{audio_cfg.num_samples} (sample_rate {audio_cfg.sample_rate} Hz × {audio_cfg.duration_s} s)")
    return model, audio_cfg
