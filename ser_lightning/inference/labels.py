"""Whether a model predicts the classes a caller asks for (:func:`check_labels`).

``predict.py``'s ``labels=`` restricts the output instead (:func:`~ser_lightning.inference.adaptation.label_subset`);
this check stays for callers that need the exact class set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ser_lightning.data.labels import LABEL_SETS, canonical_emotion, get_label_set

log = logging.getLogger(__name__)


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
