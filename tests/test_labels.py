"""Label sets over the canonical vocabulary, and emotion-alias mapping."""

from __future__ import annotations

import pytest

from ser_lightning.data.labels import (
    ALIASES,
    LABEL_SETS,
    RAVDESS_EMOTIONS,
    VOCABULARY,
    canonical_emotion,
    class_counts,
    emotion_or_raw,
    get_label_set,
    lookup_emotion,
)


@pytest.mark.parametrize(
    ("name", "n", "dropped"),
    [("ravdess8", 8, set()), ("ekman7", 7, set()), ("core6", 6, {"surprise"}),
     ("quad4", 4, {"fear", "disgust", "surprise"})],
)
def test_label_sets(name, n, dropped):
    ls = get_label_set(name)
    assert ls.name == name and ls.num_classes == n == len(ls.classes)
    assert set(ls.mapping) == set(VOCABULARY)
    assert {e for e in RAVDESS_EMOTIONS if ls.index(e) is None} == dropped
    assert ls.index("boredom") is None and ls.index("contempt") is None  # beyond RAVDESS: outside these sets
    for e in VOCABULARY:
        i = ls.index(e)
        assert i is None or 0 <= i < n


def test_calm_policy():
    assert get_label_set("ravdess8").index("calm") == RAVDESS_EMOTIONS.index("calm")
    for name in ("ekman7", "core6", "quad4"):
        merged = get_label_set(name, calm="neutral")
        assert merged.index("calm") == merged.index("neutral")
        assert get_label_set(name, calm="drop").index("calm") is None
    with pytest.raises(ValueError, match="data.calm='keep'.*'neutral', 'drop'"):
        get_label_set("ekman7", calm="keep")


def test_quad4_classes_and_counts():
    ls = get_label_set("quad4")
    assert ls.classes == ("angry", "happy", "neutral", "sad")
    assert ls.index("surprise") is None
    assert class_counts([0, 0, 3], ls) == {"angry": 2, "happy": 0, "neutral": 0, "sad": 1}


def test_unknown_label_set_lists_choices():
    with pytest.raises(ValueError, match="data.label_set='emo5'") as e:
        get_label_set("emo5")
    assert all(n in str(e.value) for n in LABEL_SETS)


def test_index_outside_vocabulary():
    with pytest.raises(ValueError, match="x.wav: emotion 'sarcasm' is not in the vocabulary"):
        get_label_set("ekman7").index("sarcasm", source="x.wav")


@pytest.mark.parametrize(
    ("label", "want"),
    [("ANG", "angry"), (" Fearful ", "fear"), ("ps", "pleasant_surprise"), ("pleasant surprise", "pleasant_surprise"),
     ("Pleasant-Surprise", "pleasant_surprise"), ("joy", "happy"), ("sa", "sad"), ("su", "surprise"),
     ("NEU", "neutral"), ("calm", "calm"), ("boredom", "boredom"), ("Boredem", "boredom"), ("bored", "boredom"),
     ("exc", "excited"), ("fru", "frustrated"), ("Contempt", "contempt"), ("oth", "other"), ("UnKnown", "other"),
     ("xxx", "no_agreement"), ("No-agreement", "no_agreement"), ("Enthusiastic", "enthusiastic"),
     ("pain,groan", "pain")],
)
def test_canonical_emotion_aliases(label, want):
    assert canonical_emotion(label) == want


def test_every_spelling_maps_into_the_vocabulary_and_vocabulary_starts_with_ravdess():
    assert VOCABULARY[:8] == RAVDESS_EMOTIONS and len(set(VOCABULARY)) == len(VOCABULARY)
    assert all(lookup_emotion(w) == w for w in VOCABULARY)
    assert lookup_emotion("sarcasm") is None and emotion_or_raw(" Sar  Casm ") == "sar casm"


def test_canonical_emotion_error_names_source():
    with pytest.raises(ValueError, match=r"m\.csv:3: emotion 'sarcasm' is not in the vocabulary"):
        canonical_emotion("sarcasm", source="m.csv:3")


def test_new_label_sets_emodb7_and_iemocap4():
    emodb = get_label_set("emodb7")
    assert emodb.classes == ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad")
    assert emodb.index("boredom") == 1 and emodb.index("surprise") is None and emodb.index("excited") is None
    iem = get_label_set("iemocap4")
    assert iem.classes == ("angry", "happy", "neutral", "sad")
    assert iem.index("excited") == iem.index("happy") == 1
    assert iem.index("frustrated") is None and iem.index("no_agreement") is None
    # quad4 has the same classes but keeps excited out: the merge belongs to IEMOCAP's convention
    assert get_label_set("quad4").index("excited") is None


def test_pleasant_surprise_is_surprise_or_its_own_class():
    assert get_label_set("ekman7").index("pleasant_surprise") == get_label_set("ekman7").index("surprise")
    assert get_label_set("core6").index("pleasant_surprise") is None
    own = get_label_set(["neutral", "surprise", "ps"])
    assert own.classes == ("neutral", "surprise", "pleasant_surprise")
    assert own.index("pleasant_surprise") == 2 and own.index("surprise") == 1


def test_list_label_set_canonicalises_merges_calm_and_rejects_bad_lists():
    ls = get_label_set(["Anger", "bored", "neu"], calm="neutral")
    assert ls.classes == ("angry", "boredom", "neutral") and ls.name == "angry+boredom+neutral"
    assert ls.index("calm") == 2 and ls.index("happy") is None
    assert get_label_set(["angry", "neutral"], calm="drop").index("calm") is None
    with pytest.raises(ValueError, match="names a class twice"):
        get_label_set(["angry", "anger"])
    with pytest.raises(ValueError, match="data.label_set: emotion 'sarcasm'"):
        get_label_set(["angry", "sarcasm"])
    with pytest.raises(ValueError, match="empty"):
        get_label_set([])


def test_a_spelling_only_its_separator_variant_reaches():
    """``-`` read as ``_``: "Pleasant-Surprised" is not in the alias table, "pleasant_surprised" is."""
    assert "pleasant-surprised" not in ALIASES and lookup_emotion("Pleasant-Surprised") == "pleasant_surprise"
    assert lookup_emotion("no - agreement") is None  # separators are swapped one for one, not squeezed


def test_errors_without_a_source_start_with_the_emotion():
    for call in (lambda: canonical_emotion("sarcasm"), lambda: get_label_set("ekman7").index("sarcasm")):
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value).startswith("emotion 'sarcasm' is not in the vocabulary")
