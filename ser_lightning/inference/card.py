"""The model card of an exported model: what it needs as input, what it returns, where it came from.

``export.py`` writes it next to the exported files (``<name>.card.json``) and embeds it in them;
``predict.py`` reads it back to preprocess audio the way the model was trained.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ser_lightning.data.audio import AudioConfig

CARD_VERSION = 1


ONNX_CARD_KEY = "ser_lightning.model_card"


TS_CARD_FILE = "model_card.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_card(classifier: nn.Module, audio_cfg: AudioConfig, source: str | Path | None = None) -> dict[str, Any]:
    """Model card of an exported classifier (everything needed to feed it and read its output).

    Args:
        classifier: The ``SERClassifier`` (its ``hparams`` give model, features, class names).
        audio_cfg: The audio preprocessing it was trained with.
        source: Source checkpoint path (recorded with its SHA-256).

    Returns:
        A JSON-serialisable dict: ``labels``, ``sample_rate`` (Hz), ``duration_s``,
        ``num_samples``, ``input``/``output`` specs, ``preprocessing`` (mono downmix, soxr
        resampling, ``normalize``, ``target_rms_dbfs``, ``pad_mode``, ``crop``, silence trimming),
        ``model``/``features`` settings, ``source_checkpoint``, ``exported_at`` (UTC ISO 8601),
        library versions; ``files`` and ``parity`` are filled in by :func:`export`.
    """
    hp = classifier.hparams
    labels = list(hp["class_names"])
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "model_name": dict(hp["model"]).get("name"),
        "labels": labels,
        "n_classes": len(labels),
        "sample_rate": audio_cfg.sample_rate,
        "duration_s": audio_cfg.duration_s,
        "num_samples": audio_cfg.num_samples,
        "input": {"name": "waveform", "dtype": "float32", "shape": ["batch", audio_cfg.num_samples],
                  "units": f"mono samples at {audio_cfg.sample_rate} Hz, after preprocessing"},
        "output": {"name": "probabilities", "dtype": "float32", "shape": ["batch", len(labels)],
                   "units": "softmax class probabilities in label order"},
        "preprocessing": {"downmix": "mean of channels", "resample": "soxr HQ",
                          "normalize": audio_cfg.normalize, "target_rms_dbfs": audio_cfg.target_rms_dbfs,
                          "trim_silence": audio_cfg.trim_silence, "trim_db": audio_cfg.trim_db,
                          "pad_mode": audio_cfg.pad_mode, "crop": audio_cfg.crop},
        "model": dict(hp["model"]),
        "features": dict(hp["features"]),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__},
    }
    if source is not None:
        src = Path(source).expanduser().resolve()
        card["source_checkpoint"] = {"path": str(src), "sha256": _sha256(src) if src.is_file() else None}
    return card


def audio_config_from_card(card: dict[str, Any]) -> AudioConfig:
    """The preprocessing recorded in a model card (see :func:`model_card`).

    Raises:
        ValueError: the card lacks ``sample_rate``/``duration_s``/``labels``.
    """
    missing = [k for k in ("sample_rate", "duration_s", "labels") if k not in card]
    if missing:
        raise ValueError(f"model card is missing {missing}")
    pre = card.get("preprocessing") or {}
    keys = ("normalize", "target_rms_dbfs", "trim_silence", "trim_db", "pad_mode", "crop")
    return AudioConfig(sample_rate=int(card["sample_rate"]), duration_s=float(card["duration_s"]),
                       **{k: pre[k] for k in keys if k in pre})
