"""Safe checkpoint loading: no pickled code runs, and no pretrained weights are fetched for a network whose
weights the checkpoint replaces anyway.

Every checkpoint this project reads goes through :func:`load_checkpoint` (``torch.load`` with
``weights_only=True``: tensors, numbers, strings and plain containers only) or through Lightning with
``weights_only=True`` (:func:`load_classifier`). A checkpoint whose pickle names any other callable (a
command, a class) is refused with one line naming the file, before anything in it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from ser_lightning.models.pretrained import loading_from_checkpoint, weights_from_checkpoint

__all__ = ["load_checkpoint", "load_classifier", "loading_from_checkpoint", "weights_from_checkpoint"]

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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
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


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu"):
    """``SERClassifier.load_from_checkpoint`` with ``weights_only=True`` and no pretrained-weight fetching.

    The checkpoint is first read with :func:`load_checkpoint` (so a malicious one fails with one line before
    Lightning touches it), then rebuilt by Lightning from the same file.

    Args:
        path: A checkpoint written by ``train.py``.
        map_location: Where tensors go.

    Returns:
        The ``SERClassifier`` in eval mode.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_checkpoint`.
    """
    from ser_lightning.modules.classifier import SERClassifier

    load_checkpoint(path, map_location="cpu")
    with weights_from_checkpoint():
        model = SERClassifier.load_from_checkpoint(Path(path).expanduser(), map_location=map_location,
                                                   weights_only=True)
    return model.eval()
