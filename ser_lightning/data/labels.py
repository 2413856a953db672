"""One emotion vocabulary shared by every corpus, and the label sets chosen from it.

Every corpus parser maps its own emotion codes onto :data:`VOCABULARY` (8 canonical words).
A :class:`LabelSet` then decides which canonical emotions become which class index, and which
are dropped (dropping is always counted and logged, never silent).

Label sets (issue #2, item 4):

* ``ravdess8`` – all eight: neutral, calm, happy, sad, angry, fear, disgust, surprise.
* ``ekman7`` – neutral, happy, sad, angry, fear, disgust, surprise; calm → neutral or dropped.
* ``core6`` – ekman7 without surprise (surprise clips dropped).
* ``quad4`` – angry, happy, neutral, sad (everything else dropped; calm → neutral or dropped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: The canonical emotion vocabulary, in RAVDESS code order (01..08).
VOCABULARY: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fear",
    "disgust",
    "surprise",
)

#: Spellings seen in corpora and manifests → canonical vocabulary word.
ALIASES: dict[str, str] = {
    "neutral": "neutral",
    "neu": "neutral",
    "n": "neutral",
    "calm": "calm",
    "happy": "happy",
    "happiness": "happy",
    "hap": "happy",
    "joy": "happy",
    "h": "happy",
    "sad": "sad",
    "sadness": "sad",
    "sa": "sad",
    "angry": "angry",
    "anger": "angry",
    "ang": "angry",
    "a": "angry",
    "fear": "fear",
    "fearful": "fear",
    "fea": "fear",
    "f": "fear",
    "disgust": "disgust",
    "dis": "disgust",
    "d": "disgust",
    "surprise": "surprise",
    "surprised": "surprise",
    "sur": "surprise",
    "su": "surprise",
    "ps": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant surprise": "surprise",
}

CALM_POLICIES = ("neutral", "drop")


def canonical_emotion(label: str, source: str = "") -> str:
    """Map a corpus or manifest emotion spelling onto the canonical vocabulary.

    Args:
        label: Emotion as written by the corpus (``"ANG"``, ``"fearful"``, ``"ps"``, ...).
            Case and surrounding white space are ignored.
        source: File or manifest row the label came from, named in the error message.

    Returns:
        One of :data:`VOCABULARY`.

    Raises:
        ValueError: if the label is not a known spelling of a vocabulary word.
    """
    key = str(label).strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    where = f"{source}: " if source else ""
    raise ValueError(
        f"{where}emotion {label!r} is not in the vocabulary {list(VOCABULARY)} "
        f"(known spellings: {sorted(ALIASES)})"
    )


@dataclass(frozen=True)
class LabelSet:
    """A choice of classes over the canonical vocabulary.

    Attributes:
        name: Label-set name as typed in config (``data.label_set``).
        classes: Class names in class-index order.
        mapping: Canonical emotion → class name, or ``None`` where the emotion is dropped.
    """

    name: str
    classes: tuple[str, ...]
    mapping: dict[str, str | None]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def index(self, emotion: str, source: str = "") -> int | None:
        """Class index of a canonical emotion, or ``None`` if this label set drops it.

        Args:
            emotion: A :data:`VOCABULARY` word.
            source: File the emotion belongs to, named in the error message.

        Raises:
            ValueError: if ``emotion`` is not a vocabulary word.
        """
        if emotion not in self.mapping:
            where = f"{source}: " if source else ""
            raise ValueError(
                f"{where}emotion {emotion!r} is outside label set {self.name!r} "
                f"(vocabulary: {list(VOCABULARY)})"
            )
        target = self.mapping[emotion]
        return None if target is None else self.classes.index(target)


LABEL_SETS = ("ravdess8", "ekman7", "core6", "quad4")


def get_label_set(name: str, calm: str = "neutral") -> LabelSet:
    """Build a label set by name.

    Args:
        name: One of :data:`LABEL_SETS`.
        calm: What ``calm`` becomes where the set has no calm class: ``"neutral"`` (merged)
            or ``"drop"``. Ignored by ``ravdess8``.

    Returns:
        The :class:`LabelSet`.

    Raises:
        ValueError: for an unknown name or calm policy (the message lists the valid choices).
    """
    if calm not in CALM_POLICIES:
        raise ValueError(f"data.calm={calm!r} is not valid; choose one of {list(CALM_POLICIES)}")
    calm_to = "neutral" if calm == "neutral" else None
    if name == "ravdess8":
        classes = VOCABULARY
        mapping: dict[str, str | None] = {e: e for e in VOCABULARY}
    elif name == "ekman7":
        classes = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
        mapping = {e: e for e in classes} | {"calm": calm_to}
    elif name == "core6":
        classes = ("neutral", "happy", "sad", "angry", "fear", "disgust")
        mapping = {e: e for e in classes} | {"calm": calm_to, "surprise": None}
    elif name == "quad4":
        classes = ("angry", "happy", "neutral", "sad")
        mapping = {e: None for e in VOCABULARY} | {e: e for e in classes} | {"calm": calm_to}
    else:
        raise ValueError(
            f"data.label_set={name!r} is not a known label set; choose one of {list(LABEL_SETS)}"
        )
    return LabelSet(name=name, classes=tuple(classes), mapping=mapping)


def class_counts(indices: Iterable[int], label_set: LabelSet) -> dict[str, int]:
    """Count items per class name (classes with no items included, as 0).

    Args:
        indices: Class indices.
        label_set: Label set the indices refer to.
    """
    counts = {c: 0 for c in label_set.classes}
    for i in indices:
        counts[label_set.classes[i]] += 1
    return counts
