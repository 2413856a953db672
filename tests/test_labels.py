"""Label sets over the canonical vocabulary, and emotion-alias mapping."""

from __future__ import annotations

import pytest

from ser_lightning.data.labels import (
    LABEL_SETS,
    VOCABULARY,
    canonical_emotion,
    class_counts,
    get_label_set,
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
    assert {e for e in VOCABULARY if ls.index(e) is None} == dropped
    for e in VOCABULARY:
        i = ls.index(e)
        assert i is None or 0 <= i < n


def test_calm_policy():
    assert get_label_set("ravdess8").index("calm") == VOCABULARY.index("calm")
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
    with pytest.raises(ValueError, match="x.wav: emotion 'bored'"):
        get_label_set("ekman7").index("bored", source="x.wav")


@pytest.mark.parametrize(
    ("label", "want"),
    [("ANG", "angry"), (" Fearful ", "fear"), ("ps", "surprise"), ("pleasant surprise", "surprise"),
     ("joy", "happy"), ("sa", "sad"), ("su", "surprise"), ("NEU", "neutral"), ("calm", "calm")],
)
def test_canonical_emotion_aliases(label, want):
    assert canonical_emotion(label) == want


def test_canonical_emotion_error_names_source():
    with pytest.raises(ValueError, match=r"m\.csv:3: emotion 'bored' is not in the vocabulary"):
        canonical_emotion("bored", source="m.csv:3")
