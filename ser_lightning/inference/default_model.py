"""The shipped default model: ``ckpt_path=default`` and ``ser.load_model("default")``.

The default model is a ``train.py`` checkpoint shipped as package data in
``ser_lightning/assets/default/`` (:data:`DEFAULT_MODEL_FILE`, with its model cards
``model.card.json`` and ``MODEL_CARD.md``), so a fresh install classifies recordings without training
and without network access. ``benchmarks/build_default_model.py`` builds it (train, evaluate the
6 folds, write the checkpoint and both cards); replacing the shipped model is rerunning that script.

Every task that takes a model (``predict.py``, ``eval.py``, ``export.py``, the Python API) resolves the
name ``default`` with :func:`resolve_model_path`.
"""

from __future__ import annotations

from pathlib import Path

#: The name that stands for the shipped default model wherever a model file is expected.
DEFAULT_NAME = "default"

#: The default model's checkpoint, inside :func:`default_model_dir`.
DEFAULT_MODEL_FILE = "model.ckpt"

#: Folder of the shipped default model (package data). Tests point it elsewhere.
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets" / "default"


def default_model_dir() -> Path:
    """The folder of the shipped default model (``ser_lightning/assets/default``)."""
    return ASSETS_DIR


def default_model_path() -> Path:
    """The shipped default checkpoint.

    Returns:
        Its path.

    Raises:
        FileNotFoundError: the file is not part of this install (one line, with what to do).
    """
    path = default_model_dir() / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path=default: the shipped default model {path} is not in this install; build it with "
            "`python benchmarks/build_default_model.py` or give a trained model (ckpt_path=PATH)")
    return path


def resolve_model_path(path: str | Path) -> Path:
    """A model setting as a file path: ``"default"`` is the shipped default, anything else a path.

    Args:
        path: ``"default"`` or a model file (``~`` is expanded).

    Returns:
        The file path (not checked unless it is the default).

    Raises:
        FileNotFoundError: ``"default"`` and the shipped model is missing.
    """
    if str(path) == DEFAULT_NAME:
        return default_model_path()
    return Path(path).expanduser()
