"""Several corpora in one run: the corpus split (``data.split=corpus``, ``data.kfold_corpus``), one frozen-feature
cache shared by every cell of a protocol, corpus-balanced loss weights (``data.corpus_weights``) and the per-clip
``test_predictions.csv`` of a run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.modules.classifier import SERClassifier
from tests.conftest import make_ravdess, run_script

pytestmark = pytest.mark.usefixtures("one_thread")


def _tone(path: Path, freq: float, seed: int, duration_s: float = 0.6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * duration_s)) / 16000
    rng = np.random.default_rng(seed)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32), 16000)


@pytest.fixture(scope="module")
def three_corpora(tmp_path_factory) -> Path:
    """RAVDESS-named (4 actors × 8 emotions × 2), TESS-named (2 speakers × 7 × 3) and TurEV-named (3 speakers ×
    4 × 3) clips under one root: 64 + 42 + 36 clips."""
    root = tmp_path_factory.mktemp("three")
    make_ravdess(root / "ravdess", actors=range(1, 5), sample_rate=16000, duration_s=0.6)
    emotions = {"angry": 200, "disgust": 250, "fear": 300, "happy": 350, "neutral": 400, "ps": 450, "sad": 500}
    for spk in ("OAF", "YAF"):
        for emo, f in emotions.items():
            folder = "pleasant_surprise" if emo == "ps" else emo
            for i, word in enumerate(("back", "bar", "base")):
                _tone(root / "tess" / f"{spk}_{folder}" / f"{spk}_{word}_{emo}.wav", f, seed=i + 7 * len(spk + emo))
    codes = {"kz": ("Angry", 220), "sk": ("Calm", 330), "mt": ("Happy", 440), "hl": ("Sad", 550)}
    for spk in ("1234", "1358", "1984"):
        for code, (folder, f) in codes.items():
            for i, word in enumerate(("acik", "bugu", "beste")):
                _tone(root / "turev" / folder / f"{spk}_{code}_{word}.wav", f, seed=int(spk) + i, duration_s=0.4)
    return root


def _dm(root: Path, cache: Path, **kw) -> SERDataModule:
    dm = SERDataModule(**{"root": str(root), "corpora": ["ravdess", "tess", "turev"], "label_set": "ekman7",
                          "cache_dir": str(cache), "duration_s": 1.0, "clip_length": "whole", "batch_size": 256,
                          "progress": False, **kw})
    dm.setup("fit")
    return dm


def test_every_cell_of_a_protocol_embeds_the_same_clips(three_corpora, tmp_path):
    cross = _dm(three_corpora, tmp_path / "c", split="corpus", test_corpora=["tess"], train_corpora=["ravdess"])
    fold = _dm(three_corpora, tmp_path / "c", split="kfold", kfold_corpus="ravdess", n_folds=4, fold=0,
               val_speakers=1, train_corpora=["turev"])
    assert cross.cache.directory == fold.cache.directory
    rows_a, rows_b = cross.cache_rows()[0], fold.cache_rows()[0]
    np.testing.assert_array_equal(rows_a, rows_b)
    assert len(rows_a) == 64 + 42 + 36  # unused clips (TurEV in the first cell, TESS in the second) included
    assert {u.corpus for u in cross.split_utterances("test")} == {"tess"}
    assert {u.corpus for u in cross.split_utterances("train") + cross.split_utterances("val")} == {"ravdess"}
    assert {u.corpus for u, a in zip(cross.utterances, cross.assignment) if a == "unused"} == {"turev"}
    assert {u.speaker for u in fold.split_utterances("test")} == {"ravdess_01"}
    assert {u.corpus for u in fold.split_utterances("train")} == {"ravdess", "turev"}
    # TurEV-DB's calm is neutral in ekman7
    turev = [(u.emotion, fold.label_set.classes[y]) for u, y in zip(fold.utterances, fold.labels) if u.corpus == "turev"]
    assert ("calm", "neutral") in turev


def _fake_features(dm: SERDataModule, path: Path) -> np.ndarray:
    rows, _ = dm.cache_rows()
    np.save(path, np.random.default_rng(0).standard_normal((len(rows), 2, 3)).astype(np.float32))
    return rows


def test_corpus_weights_make_every_training_corpus_weigh_the_same(three_corpora, tmp_path):
    dm = _dm(three_corpora, tmp_path / "c", split="corpus", test_corpora=["turev"], corpus_weights="balanced")
    rows = _fake_features(dm, tmp_path / "emb.npy")
    dm.use_feature_cache(tmp_path / "emb.npy", rows)
    batch = dm.datasets["train"].__getitems__(list(range(len(dm.datasets["train"]))))
    corpora = np.array([u.corpus for u in dm.split_utterances("train")])
    w = batch.weight.numpy()
    totals = {c: float(w[corpora == c].sum()) for c in ("ravdess", "tess")}
    assert totals["ravdess"] == pytest.approx(totals["tess"]) and w.sum() == pytest.approx(len(w))
    # (features, target, weight) for training; validation batches carry no weights
    dm.set_frontend(torch.nn.Identity())
    assert len(dm.on_after_batch_transfer(batch, 0, training=True)) == 3
    assert dm.datasets["val"].__getitems__([0]).weight is None
    # the refit's merged training set is weighted again, over training + validation clips
    n_val = len(dm.datasets["val"])
    corpora = np.array([u.corpus for u in dm.split_utterances("train") + dm.split_utterances("val")])  # merged order
    dm.merge_validation_into_training()
    merged = dm.datasets["train"].__getitems__(list(range(len(dm.datasets["train"]))))
    assert len(merged.weight) == len(w) + n_val
    assert merged.weight.numpy()[corpora == "ravdess"].sum() == pytest.approx(merged.weight.numpy()[corpora == "tess"].sum())
    with pytest.raises(ValueError, match="data.corpus_weights='size'"):
        SERDataModule(corpus_weights="size")


def test_weighted_loss_is_the_hand_computed_weighted_mean():
    model = SERClassifier({"name": "homebrew_cnn"}, {"name": "logmel"}, ["a", "b", "c"], class_weights=[1.0, 2.0, 0.5])
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.3, 0.2], [-1.0, 1.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 1, 2, 1])
    item = torch.tensor([1.0, 3.0, 0.5, 2.0])
    ce = -torch.log_softmax(logits, 1)[torch.arange(4), target]
    cw = torch.tensor([1.0, 2.0, 0.5])[target]
    expected = (ce * cw * item).sum() / (cw * item).sum()
    assert model._loss(logits, target, item).item() == pytest.approx(expected.item(), rel=1e-6)
    # unit weights give the plain class-weighted loss
    plain = F.cross_entropy(logits, target, weight=torch.tensor([1.0, 2.0, 0.5]))
    assert model._loss(logits, target, torch.ones(4)).item() == pytest.approx(plain.item(), rel=1e-6)


def test_train_on_two_corpora_scores_the_third_and_writes_its_predictions(three_corpora, tmp_path):
    run = tmp_path / "run"
    r = run_script("train.py", "model=byol_s", f"data.root={three_corpora}", f"data.cache_dir={tmp_path / 'cache'}",
                   "data.corpora=[ravdess,tess,turev]", "data.label_set=ekman7", "data.split=corpus",
                   "data.test_corpora=[turev]", "data.corpus_weights=balanced", "data.duration_s=1.0",
                   "trainer.max_epochs=2", "callbacks.progress_bar=null", cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["n"] == 36 and m["training_input"].startswith("frozen-feature")
    with (run / "test_predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 36 and {r["corpus"] for r in rows} == {"turev"}
    probs = np.array([[float(r[f"p_{c}"]) for c in m["labels"]] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    # the file's arg-max and labels give the run's confusion matrix
    cm = np.zeros((len(m["labels"]),) * 2, dtype=int)
    for r, p in zip(rows, probs):
        cm[m["labels"].index(r["label"]), int(p.argmax())] += 1
    np.testing.assert_array_equal(cm, np.array(m["confusion_matrix"]))
    r = run_script("train.py", "model=homebrew_cnn", f"data.root={three_corpora}", "data.corpus_weights=balanced",
                   "data.corpora=[ravdess,tess,turev]", "data.label_set=ekman7", "data.split=corpus",
                   "data.test_corpora=[turev]", f"data.cache_dir={tmp_path / 'cache'}", "debug=fast", cwd=tmp_path / "cnn")
    assert r.returncode == 1 and "data.corpus_weights=balanced weighs cached frozen features" in r.stderr


def test_split_all_trains_on_every_clip_for_the_set_epochs(three_corpora, tmp_path):
    common = ["model=byol_s", f"data.root={three_corpora}", f"data.cache_dir={tmp_path / 'cache'}",
              "data.corpora=[ravdess,tess,turev]", "data.label_set=ekman7", "data.split=all", "data.duration_s=1.0",
              "trainer.max_epochs=3", "callbacks.progress_bar=null"]
    r = run_script("train.py", *common, "refit=true", cwd=tmp_path / "refused")
    assert r.returncode == 1 and "refit=true with data.split=all" in r.stderr
    run = tmp_path / "run"
    r = run_script("train.py", *common, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["train_clips"] == 64 + 42 + 36 and m["train_corpora"] == {"ravdess": 64, "tess": 42, "turev": 36}
    ckpt = torch.load(run / "checkpoints" / "final.ckpt", weights_only=True)
    assert ckpt["epoch"] == 3  # saved after the fit: the 3 finished epochs
    assert m["epochs"] == 3 and not (run / "checkpoints" / "best.ckpt").exists()
    model = SERClassifier.load_from_checkpoint(run / "checkpoints" / "final.ckpt", map_location="cpu", weights_only=True)
    assert model.class_names == m["labels"] and len(m["labels"]) == 7


def test_a_full_batch_optimiser_gets_every_training_item_in_one_batch(three_corpora, tmp_path):
    dm = _dm(three_corpora, tmp_path / "c", split="corpus", test_corpora=["turev"], batch_size=16)
    rows = _fake_features(dm, tmp_path / "emb.npy")
    dm.use_feature_cache(tmp_path / "emb.npy", rows)
    n = len(dm.datasets["train"])
    assert n > 16 and len(dm.train_dataloader()) == -(-n // 16)
    dm.full_batch_training = True
    (batch,) = list(dm.train_dataloader())
    assert len(batch.target) == n
    assert len(next(iter(dm.val_dataloader())).target) == 16  # validation keeps data.batch_size


def test_corpus_weights_cover_the_augmented_views(three_corpora, tmp_path):
    from ser_lightning.modules.frozen_features import use_frozen_features
    from tests.test_robust_views import BYOL, FAST_VIEWS

    dm = _dm(three_corpora, tmp_path / "c", split="corpus", test_corpora=["turev"], corpus_weights="balanced",
             train_views=1, augment={"views": FAST_VIEWS})
    model = SERClassifier(BYOL, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    use_frozen_features(model.network, dm, BYOL, progress=False)

    def totals() -> dict[str, float]:
        w = dm.datasets["train"].__getitems__(list(range(len(dm.datasets["train"])))).weight.numpy()
        corpora = dm.row_corpus[dm.train_item_rows]
        assert len(w) == len(corpora) == 2 * len(set(dm.train_item_rows.tolist()))  # clean + 1 view per clip
        return {c: float(w[corpora == c].sum()) for c in ("ravdess", "tess")}

    t = totals()
    assert t["ravdess"] == pytest.approx(t["tess"])
    dm.merge_validation_into_training()
    t = totals()
    assert t["ravdess"] == pytest.approx(t["tess"])
