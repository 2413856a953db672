"""Explicit speaker folds (``data.speaker_folds``) and the EmoBox RAVDESS preset (``folds=emobox_ravdess``)."""

from __future__ import annotations

import logging

import pytest
from hydra import compose, initialize_config_dir

from ser_lightning.data.manifest import Utterance
from ser_lightning.data.splits import assign_splits, resolve_speaker_folds
from tests.conftest import REPO, make_ravdess

EMOBOX_RAVDESS = [[1, 11, 20, 21], [4, 10, 12, 14], [8, 9, 19, 23], [3, 5, 7, 24], [2, 15, 16, 18], [6, 13, 17, 22]]


def _corpus(n_speakers=24, per_speaker=4, corpus="ravdess"):
    utts = [Utterance(f"/x/{s}_{i}.wav", corpus, f"{corpus}_{s:02d}", "happy", "male" if s % 2 else "female")
            for s in range(1, n_speakers + 1) for i in range(per_speaker)]
    return utts, [i % 4 for i in range(len(utts))]


def _speakers(utts, assign, name):
    return {int(u.speaker.rsplit("_", 1)[1]) for u, a in zip(utts, assign) if a == name}


def test_groups_are_the_test_folds_and_validation_comes_from_training_speakers():
    utts, labels = _corpus()
    for k, group in enumerate(EMOBOX_RAVDESS):
        a = assign_splits(utts, labels, mode="kfold", fold=k, val_speakers=4, seed=k, speaker_groups=EMOBOX_RAVDESS)
        test, val, train = (_speakers(utts, a, s) for s in ("test", "val", "train"))
        assert test == set(group)
        assert len(val) == 4 and not val & test and not val & train
        assert val | train == set(range(1, 25)) - set(group)  # the fold's 20 training actors, 4 of them validate


def test_names_may_be_numbers_corpus_names_or_full_ids():
    speakers = {f"ravdess_{s:02d}": "ravdess" for s in range(1, 5)}
    assert resolve_speaker_folds([[1, "02"], ["ravdess_03", "4"]], speakers) == [
        ["ravdess_01", "ravdess_02"], ["ravdess_03", "ravdess_04"]]
    iemocap = {f"iemocap_Ses0{s}{g}": "iemocap" for s in (1, 2) for g in "FM"}
    assert resolve_speaker_folds([["Ses01F", "Ses01M"], ["Ses02F"]], iemocap) == [
        ["iemocap_Ses01F", "iemocap_Ses01M"], ["iemocap_Ses02F"]]


def test_speakers_in_no_group_are_logged(caplog):
    speakers = {f"ravdess_{s:02d}": "ravdess" for s in range(1, 6)}
    with caplog.at_level(logging.WARNING):
        resolve_speaker_folds([[1], [2]], speakers)
    assert "3 speaker(s) in no group" in caplog.text and "ravdess_05" in caplog.text


@pytest.mark.parametrize("groups, kwargs, message", [
    ([[1, 2], [2, 3]], {}, r"data.speaker_folds: speaker ravdess_02 is in group 0 and group 1"),
    ([[1, 2], [25]], {}, r"data.speaker_folds: speaker 25 of group 1 is not a speaker of the corpus"),
    ([[1, 2]], {}, r"data.speaker_folds=\[\[1, 2\]\] must be a list of at least two"),
    ([[1], []], {}, r"data.speaker_folds=.* must be a list of at least two non-empty"),
    ([[1], [2.5]], {}, r"data.speaker_folds: 2.5 in group 1 is not a speaker name"),
    ([[1], [2]], {"fold": 2}, r"data.fold=2 must be an integer in 0..1 \(2 groups in data.speaker_folds\)"),
    ([[1], [2]], {"mode": "speaker"}, r"data.speaker_folds is set but data.split=speaker"),
])
def test_bad_groups_name_the_setting(groups, kwargs, message):
    utts, labels = _corpus(n_speakers=8)
    args = {"mode": "kfold", "fold": 0, "val_speakers": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        assign_splits(utts, labels, speaker_groups=groups, **args)


def test_a_number_shared_by_two_corpora_is_ambiguous():
    a, la = _corpus(n_speakers=4)
    b, lb = _corpus(n_speakers=4, corpus="emodb")
    with pytest.raises(ValueError, match=r"speaker 1 of group 0 is ambiguous \(emodb_01, ravdess_01\)"):
        assign_splits(a + b, la + lb, mode="kfold", fold=0, val_speakers=2, speaker_groups=[[1], ["ravdess_02"]])


def test_datamodule_rejects_badly_shaped_groups_before_reading_audio():
    from ser_lightning.data.datamodule import SERDataModule

    with pytest.raises(ValueError, match="data.speaker_folds=.*must be a list"):
        SERDataModule(root="/nonexistent", split="kfold", fold=0, speaker_folds=[1, 2, 3])
    with pytest.raises(ValueError, match="data.speaker_folds is set but data.split=speaker"):
        SERDataModule(root="/nonexistent", split="speaker", speaker_folds=[[1], [2]])


def test_emobox_preset_composes_and_splits_generated_ravdess_into_emobox_groups(tmp_path):
    """``folds=emobox_ravdess`` on 24 generated RAVDESS actors: every fold tests EmoBox's group."""
    from ser_lightning.cli.train import build_datamodule
    from ser_lightning.cli.validate import validate_config

    root = make_ravdess(tmp_path / "data", actors=range(1, 25), statements=(1,), sample_rate=8000, duration_s=0.2)
    for k, group in enumerate(EMOBOX_RAVDESS):
        with initialize_config_dir(str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=["model=homebrew_cnn", "folds=emobox_ravdess", f"data.fold={k}",
                                              f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                                              "data.duration_s=0.2",
                                              "paths.output_dir=" + str(tmp_path / "out")])
        assert cfg.data.split == "kfold"
        validate_config(cfg)
        dm = build_datamodule(cfg, None)
        dm.progress = False
        dm.setup("fit")
        test, val, train = (_speakers(dm.utterances, dm.assignment, s) for s in ("test", "val", "train"))
        assert test == set(group)
        assert len(val) == 4 and not val & test and val | train == set(range(1, 25)) - set(group)
    with initialize_config_dir(str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        bad = compose("train", overrides=["folds=emobox_ravdess", "data.fold=6"])
    with pytest.raises(ValueError, match=r"data.fold=6 must be an integer in 0..5 \(6 groups in data.speaker_folds\)"):
        validate_config(bad)


def test_make_cv_emobox_runs_the_preset_over_six_folds():
    import re
    import shlex

    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    recipe = re.search(r"^cv-emobox:.*\n\t\$\(PY\) train\.py (.*) \$\(ARGS\)$", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "Makefile has no cv-emobox target running train.py"
    args = [a for a in shlex.split(recipe.group(1)) if a != "-m"]
    jobs = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), max_batch_size=None)[0]
    assert len(jobs) == 6
    with initialize_config_dir(str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        folds = [compose("train", overrides=list(job)).data for job in jobs]
    assert [f.fold for f in folds] == list(range(6)) and all(f.split == "kfold" for f in folds)
    assert [list(g) for g in folds[0].speaker_folds] == EMOBOX_RAVDESS
