"""Where a network's pretrained weights come from while it is rebuilt from a checkpoint.

A network built with pretrained weights (``model.pretrained=offline``, a hub id, a path) normally reads them when it is
constructed; when it is rebuilt from a checkpoint, the checkpoint's state dict is loaded over them next, so reading
them is wasted (and may need a network connection). :func:`weights_from_checkpoint` marks that case; builders ask
:func:`loading_from_checkpoint`. A module of its own (no timm, no transformers) so that the prediction path imports
nothing a model does not need (:mod:`ser_lightning.inference.checkpoint`).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

_FROM_CHECKPOINT: contextvars.ContextVar[bool] = contextvars.ContextVar("ser_weights_from_checkpoint", default=False)


@contextmanager
def weights_from_checkpoint():
    """Within this context, networks built with pretrained weights skip fetching them (hub, packaged files):
    the checkpoint's state dict is loaded over them next. Architecture choices that follow from the weights
    source (e.g. Inception-v3's TensorFlow pooling with ``pretrained=offline``) are still made."""
    token = _FROM_CHECKPOINT.set(True)
    try:
        yield
    finally:
        _FROM_CHECKPOINT.reset(token)


def loading_from_checkpoint() -> bool:
    """True inside :func:`weights_from_checkpoint`."""
    return _FROM_CHECKPOINT.get()
