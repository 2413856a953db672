"""ser_lightning: speech emotion recognition on PyTorch Lightning + Hydra.

Python API::

    import ser_lightning as ser
    model = ser.load_model("default")            # the shipped model, or "outputs/train/<run>/checkpoints/best.ckpt"
    result = model.predict("clip.wav")          # or model.predict(array, sample_rate), model.predict([...])
    result.status, result.label, result.probabilities   # status "no speech" (label None) for audio without speech

See :func:`load_model` and :class:`ser_lightning.inference.api.EmotionModel`.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (read once, when torch loads OpenMP, so set before torch is
# imported: here, since every command and `import ser_lightning` import torch through this package). The default
# model's L-BFGS fits are thousands of small tensor operations; with spinning threads on shared cores each
# operation can wait for a descheduled partner, which made the fits 5-10 times slower when another job used the
# cores. The results do not change (the thread count decides the arithmetic, not how idle threads wait). Set
# OMP_WAIT_POLICY=ACTIVE to spin.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

#: The torch / torchaudio / torchvision trio this release is built and locked against (pyproject.toml pins
#: the same versions; tests/test_lock.py checks that they agree). torchaudio's compiled extension is
#: ABI-coupled to one torch release.
SUPPORTED_TRIO = {"torch": "2.11.0", "torchaudio": "2.11.0", "torchvision": "0.26.0"}


def _installed(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _check_torchaudio() -> None:
    """Import torchaudio once, turning a failure of its compiled extension into one clear line.

    Raises:
        ImportError: torchaudio (or its ``libtorchaudio`` extension) fails to load; the message names the
            installed torch and torchaudio versions and the supported pair.
    """
    try:
        import torchaudio  # noqa: F401
    except Exception as err:  # OSError (undefined symbol), ImportError, RuntimeError: all one story
        why = " ".join(str(err).split())[:200]
        raise ImportError(
            f"torchaudio failed to load ({type(err).__name__}: {why}): installed torch {_installed('torch')} + "
            f"torchaudio {_installed('torchaudio')}, but ser_lightning supports torch {SUPPORTED_TRIO['torch']} + "
            f"torchaudio {SUPPORTED_TRIO['torchaudio']} (+ torchvision {SUPPORTED_TRIO['torchvision']}); "
            f"reinstall the locked environment with `make install` (pip install --require-hashes --no-deps "
            f"-r requirements.lock)"
        ) from None


_check_torchaudio()


def load_model(path: str, **kwargs):
    """Load a trained model for prediction: see :func:`ser_lightning.inference.api.load_model`."""
    from ser_lightning.inference.api import load_model as _load

    return _load(path, **kwargs)


__all__ = ["SUPPORTED_TRIO", "__version__", "load_model"]
