"""One emotion vocabulary shared by every corpus, and the label sets chosen from it.

Every corpus parser maps its own emotion codes onto :data:`VOCABULARY`. The vocabulary grows
with the corpora: the first eight words are RAVDESS's (in its code order 01..08), then the words
other corpora use (EmoDB's boredom, IEMOCAP's excited and frustrated, MSP-Podcast's contempt,
other and no-agreement, TESS's pleasant surprise, JL-Corpus's secondary emotions, and the rest of
EmoBox's label maps). A :class:`LabelSet` then decides which vocabulary words become which class
index; a word the set has no class for is *outside the label set* (what happens to its clips is
``data.unknown_labels``, see :mod:`ser_lightning.data.datamodule`).

Label sets (``data.label_set``):

* ``ravdess8`` – neutral, calm, happy, sad, angry, fear, disgust, surprise.
* ``ekman7`` – neutral, happy, sad, angry, fear, disgust, surprise; calm → neutral or dropped.
* ``core6`` – ekman7 without surprise.
* ``quad4`` – angry, happy, neutral, sad (calm → neutral or dropped).
* ``emodb7`` – EmoDB's seven: angry, boredom, disgust, fear, happy, neutral, sad.
* ``iemocap4`` – IEMOCAP's usual four: angry, happy (happy + excited merged), neutral, sad.
* a list of vocabulary words (``data.label_set=[angry,boredom,neutral]``): exactly those classes,
  in that order.

Everywhere, pleasant surprise counts as surprise where the set has surprise but no
``pleasant_surprise`` class (a list naming ``pleasant_surprise`` keeps it as its own class).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: RAVDESS's eight emotions in its code order (01..08); the first words of :data:`VOCABULARY`.
RAVDESS_EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")

#: The canonical emotion vocabulary: RAVDESS's eight, then the words of the other corpora.
VOCABULARY: tuple[str, ...] = (
    *RAVDESS_EMOTIONS,
    "pleasant_surprise",  # TESS "ps"
    "boredom",            # EmoDB "L", ASVP-ESD
    "contempt",           # MSP-Podcast "C", MEAD
    "excited",            # IEMOCAP "exc", JL-Corpus, EMNS, ASVP-ESD
    "frustrated",         # IEMOCAP "fru"
    "other",              # IEMOCAP "oth", MSP-Podcast "O", "unknown"
    "no_agreement",       # IEMOCAP "xxx", MSP-Podcast "X": annotators did not agree
    "anxious", "apologetic", "assertive", "concerned", "encouraging",  # JL-Corpus secondary emotions
    "amused", "sleepy",   # EmoV-DB
    "sarcastic",          # EMNS
    "worried",            # MER2023
    "enthusiastic",       # RESD
    "poker",              # PAVOQUE poker-face style
    "pleasure", "pain", "disappointment", "breath",  # ASVP-ESD non-speech vocalisations
)

#: Spellings seen in corpora, manifests and EmoBox label maps → canonical vocabulary word.
ALIASES: dict[str, str] = {w: w for w in VOCABULARY} | {
    "neu": "neutral", "n": "neutral", "neutrality": "neutral", "neutre": "neutral",
    "happiness": "happy", "hap": "happy", "joy": "happy", "h": "happy", "joie": "happy", "gio": "happy",
    "sadness": "sad", "sa": "sad", "tri": "sad", "tristesse": "sad",
    "anger": "angry", "ang": "angry", "a": "angry", "rab": "angry", "colère": "angry", "colere": "angry",
    "fearful": "fear", "fea": "fear", "f": "fear", "pau": "fear", "peur": "fear",
    "disgusted": "disgust", "dis": "disgust", "d": "disgust", "dégoût": "disgust", "degout": "disgust",
    "surprised": "surprise", "sur": "surprise", "su": "surprise", "sor": "surprise",
    "ps": "pleasant_surprise", "pleasant surprise": "pleasant_surprise", "pleasant-surprise": "pleasant_surprise",
    "pleasant_surprised": "pleasant_surprise", "pleasant surprised": "pleasant_surprise",
    "bored": "boredom", "boredem": "boredom", "bor": "boredom",
    "contemptuous": "contempt",
    "excitement": "excited", "exc": "excited",
    "frustration": "frustrated", "fru": "frustrated",
    "oth": "other", "unknown": "other", "unk": "other",
    "xxx": "no_agreement", "no-agreement": "no_agreement", "no agreement": "no_agreement",
    "enthusiasm": "enthusiastic", "pain,groan": "pain", "disappointment,disapproval": "disappointment",
}

CALM_POLICIES = ("neutral", "drop")


def lookup_emotion(label: str) -> str | None:
    """The vocabulary word a spelling stands for, or ``None`` for a spelling the vocabulary lacks.

    Args:
        label: Emotion as written by a corpus (``"ANG"``, ``"fearful"``, ``"ps"``, ...); case,
            surrounding white space and inner ``_``/``-``/space differences are ignored.
    """
    key = " ".join(str(label).strip().lower().split())
    for k in (key, key.replace(" ", "_"), key.replace("_", " "), key.replace("-", "_")):
        if k in ALIASES:
            return ALIASES[k]
    return None


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
    word = lookup_emotion(label)
    if word is not None:
        return word
    where = f"{source}: " if source else ""
    raise ValueError(
        f"{where}emotion {label!r} is not in the vocabulary {list(VOCABULARY)} "
        f"(known spellings: {sorted(ALIASES)})"
    )


def emotion_or_raw(label: str) -> str:
    """The vocabulary word of ``label``, else the label itself lower-cased (kept for
    ``data.unknown_labels``: an error, a count of dropped clips or unscorable clips, never a
    failed scan)."""
    return lookup_emotion(label) or " ".join(str(label).strip().lower().split())


@dataclass(frozen=True)
class LabelSet:
    """A choice of classes over the canonical vocabulary.

    Attributes:
        name: Label-set name as typed in config (``data.label_set``), or the class names joined
            by ``+`` for a list.
        classes: Class names in class-index order.
        mapping: Vocabulary word → class name, or ``None`` where the word is outside the set.
    """

    name: str
    classes: tuple[str, ...]
    mapping: dict[str, str | None]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def index(self, emotion: str, source: str = "") -> int | None:
        """Class index of a canonical emotion, or ``None`` if it is outside this label set.

        Args:
            emotion: A :data:`VOCABULARY` word.
            source: File the emotion belongs to, named in the error message.

        Raises:
            ValueError: if ``emotion`` is not a vocabulary word.
        """
        if emotion not in self.mapping:
            where = f"{source}: " if source else ""
            raise ValueError(
                f"{where}emotion {emotion!r} is not in the vocabulary (label set {self.name!r}; "
                f"vocabulary: {list(VOCABULARY)})"
            )
        target = self.mapping[emotion]
        return None if target is None else self.classes.index(target)


#: Named label sets and their classes, in class-index order.
NAMED_LABEL_SETS: dict[str, tuple[str, ...]] = {
    "ravdess8": RAVDESS_EMOTIONS,
    "ekman7": ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"),
    "core6": ("neutral", "happy", "sad", "angry", "fear", "disgust"),
    "quad4": ("angry", "happy", "neutral", "sad"),
    "emodb7": ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"),
    "iemocap4": ("angry", "happy", "neutral", "sad"),
}
LABEL_SETS = tuple(NAMED_LABEL_SETS)
#: Merges beyond identity: vocabulary word → class, applied where the set has the class but not the word.
_MERGES: dict[str, dict[str, str]] = {
    "iemocap4": {"excited": "happy"},
}


def get_label_set(name: str | Sequence[str], calm: str = "neutral") -> LabelSet:
    """Build a label set by name, or from a list of vocabulary words.

    Args:
        name: One of :data:`LABEL_SETS`, or a list of vocabulary words (any known spelling) that
            become the classes, in that order.
        calm: What ``calm`` becomes where the set has no calm class: ``"neutral"`` (merged, if
            the set has neutral) or ``"drop"`` (outside the set).

    Returns:
        The :class:`LabelSet`. Its mapping covers every vocabulary word; ``pleasant_surprise``
        maps to ``surprise`` where the set has surprise but no pleasant_surprise class.

    Raises:
        ValueError: for an unknown name or calm policy, a list word outside the vocabulary, a
            repeated class or an empty list (the message lists the valid choices).
    """
    if calm not in CALM_POLICIES:
        raise ValueError(f"data.calm={calm!r} is not valid; choose one of {list(CALM_POLICIES)}")
    if isinstance(name, str):
        if name not in NAMED_LABEL_SETS:
            raise ValueError(
                f"data.label_set={name!r} is not a known label set; choose one of {list(LABEL_SETS)} "
                "or give a list of vocabulary words"
            )
        classes, label = NAMED_LABEL_SETS[name], name
    else:
        words = list(name)
        if not words:
            raise ValueError("data.label_set=[] is empty: give a label-set name or a list of vocabulary words")
        classes = tuple(canonical_emotion(w, source="data.label_set") for w in words)
        if len(set(classes)) != len(classes):
            raise ValueError(f"data.label_set={words} names a class twice (as spelt in the vocabulary: {list(classes)})")
        label = "+".join(classes)
    mapping: dict[str, str | None] = {e: (e if e in classes else None) for e in VOCABULARY}
    if "calm" not in classes:
        mapping["calm"] = "neutral" if calm == "neutral" and "neutral" in classes else None
    if "surprise" in classes and "pleasant_surprise" not in classes:
        mapping["pleasant_surprise"] = "surprise"
    for word, target in _MERGES.get(label, {}).items():
        mapping[word] = target
    return LabelSet(name=label, classes=tuple(classes), mapping=mapping)


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
