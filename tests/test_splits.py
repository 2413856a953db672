"""Speaker-independent splits, k-fold by speaker, and the (warned) random split."""

from __future__ import annotations

import logging
import re

import pytest

from ser_lightning.data.manifest import Utterance
from ser_lightning.data.splits import assign_splits, speaker_folds


def _corpus(n_speakers=24, per_speaker=10):
    utts, labels = [], []
    for s in range(1, n_speakers + 1):
        for i in range(per_speaker):
            utts.append(Utterance(f"/x/{s}_{i}.wav", "ravdess", f"ravdess_{s:02d}", "happy", "male" if s % 2 else "female"))
            labels.append(i % 4)
    return utts, labels


def _speakers(utts, assign, name):
    return {u.speaker for u, a in zip(utts, assign) if a == name}


def test_speaker_split_is_disjoint_balanced_and_deterministic():
    utts, labels = _corpus()
    a = assign_splits(utts, labels, mode="speaker", seed=3, val_speakers=4, test_speakers=4)
    tr, va, te = (_speakers(utts, a, s) for s in ("train", "val", "test"))
    assert len(te) == 4 and len(va) == 4 and len(tr) == 16
    assert not (tr & va) and not (tr & te) and not (va & te)
    # gender-balanced held-out sets (odd actors male, even female)
    assert sum(int(s[-2:]) % 2 for s in te) == 2 and sum(int(s[-2:]) % 2 for s in va) == 2
    assert a == assign_splits(utts, labels, mode="speaker", seed=3, val_speakers=4, test_speakers=4)
    assert a != assign_splits(utts, labels, mode="speaker", seed=4, val_speakers=4, test_speakers=4)


def test_ravdess_default_folds_hold_out_four_consecutive_actors():
    speakers = [f"ravdess_{i:02d}" for i in range(24, 0, -1)]
    folds = speaker_folds(speakers, 6)
    assert folds[0] == ["ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04"]
    assert folds[5] == ["ravdess_21", "ravdess_22", "ravdess_23", "ravdess_24"]
    utts, labels = _corpus()
    for k in range(6):
        a = assign_splits(utts, labels, mode="kfold", fold=k, n_folds=6, val_speakers=4, seed=0)
        assert _speakers(utts, a, "test") == set(folds[k])
        assert not (_speakers(utts, a, "val") & set(folds[k]))


def test_loso_is_kfold_with_one_speaker_per_fold():
    utts, labels = _corpus(n_speakers=4)
    tests = [_speakers(utts, assign_splits(utts, labels, mode="kfold", fold=k, n_folds=4, val_speakers=1), "test") for k in range(4)]
    assert [len(t) for t in tests] == [1, 1, 1, 1] and len(set().union(*tests)) == 4


def test_random_split_warns_about_leakage_and_stratifies(caplog):
    utts, labels = _corpus()
    with caplog.at_level(logging.WARNING):
        a = assign_splits(utts, labels, mode="random", val_frac=0.1, test_frac=0.2, seed=0)
    assert "same speakers" in caplog.text
    assert a.count("test") == pytest.approx(0.2 * len(a), abs=4)
    assert _speakers(utts, a, "test") & _speakers(utts, a, "train")  # it does leak
    # Stratified: every class (72, 72, 48, 48 clips) keeps its share in every split, rounded per class.
    sizes = [labels.count(c) for c in range(4)]
    assert sizes == [72, 72, 48, 48]
    for name, share in (("test", [14, 14, 10, 10]), ("val", [7, 7, 5, 5]), ("train", [51, 51, 33, 33])):
        assert [sum(1 for y, s in zip(labels, a) if s == name and y == c) for c in range(4)] == share, name


def test_random_split_stratifies_an_unbalanced_corpus():
    utts, _ = _corpus()
    labels = [0 if i < 200 else 1 for i in range(len(utts))]  # 200 : 40
    a = assign_splits(utts, labels, mode="random", val_frac=0.1, test_frac=0.2, seed=1)
    test = [y for y, s in zip(labels, a) if s == "test"]
    assert (test.count(0), test.count(1)) == (40, 8)  # 20 % of each class


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "kfold", "fold": 6, "n_folds": 6}, "data.fold=6"),
        ({"mode": "kfold", "fold": None}, "data.fold=None"),
        ({"mode": "speaker", "test_speakers": 12, "val_speakers": 12}, "data.test_speakers=12"),
        ({"mode": "bogus"}, "data.split='bogus'"),
        ({"mode": "kfold", "fold": 0, "n_folds": 30}, "data.n_folds=30"),
    ],
)
def test_bad_split_settings_name_the_setting(kwargs, message):
    utts, labels = _corpus()
    with pytest.raises(ValueError) as err:
        assign_splits(utts, labels, **kwargs)
    assert message in str(err.value)


def _three_corpora():
    utts, labels = [], []
    for corpus, n in (("ravdess", 24), ("tess", 2), ("turev", 6)):
        for s in range(1, n + 1):
            for i in range(4):
                utts.append(Utterance(f"/{corpus}/{s}_{i}.wav", corpus, f"{corpus}_{s:02d}", "happy",
                                      "male" if s % 2 else "female"))
                labels.append(i % 4)
    return utts, labels


def test_corpus_split_tests_whole_corpora_and_validates_one_speaker_in_six_of_each():
    utts, labels = _three_corpora()
    a = assign_splits(utts, labels, mode="corpus", seed=1, test_corpora=["turev"])
    by = {(u.corpus, s) for u, s in zip(utts, a)}
    assert {s for c, s in by if c == "turev"} == {"test"}
    val = _speakers(utts, a, "val")
    assert sum(s.startswith("ravdess") for s in val) == 4  # 24 / 6
    assert sum(s.startswith("tess") for s in val) == 1     # at least one, never both
    assert _speakers(utts, a, "train") == {u.speaker for u in utts if u.corpus != "turev"} - val
    assert a == assign_splits(utts, labels, mode="corpus", seed=1, test_corpora=["turev"])
    # train_corpora narrows training; the corpus in neither list is unused
    b = assign_splits(utts, labels, mode="corpus", seed=1, test_corpora=["tess"], train_corpora=["ravdess"])
    assert {s for u, s in zip(utts, b) if u.corpus == "turev"} == {"unused"}
    assert {s for u, s in zip(utts, b) if u.corpus == "tess"} == {"test"}


def test_kfold_in_one_corpus_trains_the_others_whole():
    utts, labels = _three_corpora()
    a = assign_splits(utts, labels, mode="kfold", seed=1, fold=0, n_folds=6, val_speakers=4, kfold_corpus="ravdess",
                      train_corpora=["tess"])
    assert _speakers(utts, a, "test") == {f"ravdess_{i:02d}" for i in (1, 2, 3, 4)}
    assert len(_speakers(utts, a, "val")) == 4 and all(s.startswith("ravdess") for s in _speakers(utts, a, "val"))
    assert {s for u, s in zip(utts, a) if u.corpus == "tess"} == {"train"}
    assert {s for u, s in zip(utts, a) if u.corpus == "turev"} == {"unused"}
    # the RAVDESS folds are the plain k-fold's, whatever else is in the data
    only = [u for u in utts if u.corpus == "ravdess"]
    plain = assign_splits(only, [0] * len(only), mode="kfold", seed=1, fold=0, n_folds=6, val_speakers=4)
    assert [s for u, s in zip(utts, a) if u.corpus == "ravdess"] == plain


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "corpus"}, "needs data.test_corpora"),
    ({"mode": "corpus", "test_corpora": ["cremad"]}, "not among the corpora"),
    ({"mode": "corpus", "test_corpora": ["tess"], "train_corpora": ["tess"]}, "share ['tess']"),
    ({"mode": "corpus", "test_corpora": ["ravdess", "tess", "turev"]}, "no training corpus is left"),
    ({"mode": "speaker", "test_corpora": ["tess"]}, "needs data.split=corpus"),
    ({"mode": "speaker", "kfold_corpus": "ravdess"}, "needs data.split=kfold"),
    ({"mode": "kfold", "fold": 0, "train_corpora": ["tess"]}, "needs data.kfold_corpus"),
])
def test_corpus_split_settings_are_refused_in_one_line(kwargs, message):
    utts, labels = _three_corpora()
    with pytest.raises(ValueError, match=re.escape(message)):
        assign_splits(utts, labels, seed=1, **kwargs)

def _tagged(speakers_by_tag: dict[str, list[str]], field: str) -> list[Utterance]:
    return [Utterance(f"/x/{s}_{i}.wav", "c", s, "happy", "male" if n % 2 else "female", fields={field: tag})
            for tag, speakers in speakers_by_tag.items() for n, s in enumerate(speakers) for i in range(3)]


def test_partition_split_keeps_the_corpus_partitions_and_draws_validation_speakers_from_train():
    utts = _tagged({"Train": ["a1", "a2", "a3", "a4"], "test": ["t1", "t2"], "Test2": ["u1"]}, "partition")
    out = assign_splits(utts, [0] * len(utts), mode="partition", seed=5, val_speakers=1)
    by = {s: _speakers(utts, out, s) for s in ("train", "val", "test", "unused")}
    assert by["test"] == {"t1", "t2"} and by["unused"] == {"u1"} and len(by["val"]) == 1 and len(by["train"]) == 3
    assert by["val"] | by["train"] == {"a1", "a2", "a3", "a4"}
    assert all(out == assign_splits(utts, [0] * len(utts), mode="partition", seed=5, val_speakers=1) for _ in range(4))


def test_session_split_holds_out_one_session_and_validates_on_other_speakers():
    utts = _tagged({"1": ["s1F", "s1M"], "2": ["s2F", "s2M"], "3": ["s3F", "s3M"], "4": ["s4F", "s4M"]}, "session")
    out = assign_splits(utts, [0] * len(utts), mode="session", fold="2", seed=0, val_speakers=2)
    assert _speakers(utts, out, "test") == {"s2F", "s2M"} and len(_speakers(utts, out, "val")) == 2
    assert not _speakers(utts, out, "val") & {"s2F", "s2M"}
    assert all(out == assign_splits(utts, [0] * len(utts), mode="session", fold="2", seed=0, val_speakers=2)
               for _ in range(6))  # seeded: the same validation speakers every time


def test_folds_follow_the_natural_order_of_speaker_names():
    assert speaker_folds(["s10", "s2", "s1", "s9", "s11", "s3"], 3) == [["s1", "s2"], ["s3", "s9"], ["s10", "s11"]]


def test_one_validation_and_one_test_speaker_are_enough():
    utts, labels = _corpus(n_speakers=3)
    a = assign_splits(utts, labels, mode="speaker", seed=0, val_speakers=1, test_speakers=1)
    assert [len(_speakers(utts, a, s)) for s in ("train", "val", "test")] == [1, 1, 1]


def test_random_split_fractions_must_stay_below_one():
    utts, labels = _corpus()
    with pytest.raises(ValueError, match="data.test_frac=1.0"):
        assign_splits(utts, labels, mode="random", val_frac=0.0001, test_frac=1.0)
