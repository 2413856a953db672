"""Per-corpus log-mel statistics (``model.norm_stats=per_corpus``): computed, applied per clip, stored, cached apart."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.data.datamodule import SERDataModule, WholeClipBatch
from ser_lightning.evaluation.unscorable import predict_unscorable
from ser_lightning.features.encoder_frontends import ByolLogMel, frame_mask
from ser_lightning.models import build_network
from ser_lightning.modules.classifier import SERClassifier
from ser_lightning.modules.frozen_features import encoder_identity, use_frozen_features
from ser_lightning.modules.norm_stats import (
    compute_corpus_stats,
    mean_sd,
    pooled_stats,
    stats_from_moments,
    training_norm_stats,
)
from tests.conftest import make_ravdess, run_script
from tests.test_unknown_labels import make_emodb

pytestmark = pytest.mark.usefixtures("one_thread")

BYOL = {"name": "byol_s", "pool_each_layer": True, "norm_stats": "per_corpus"}


def _quieten(root: Path, corpus: str, gain: float) -> None:
    """Scale every clip of a generated corpus by ``gain`` (another recording level)."""
    for path in (root / corpus).rglob("*.wav"):
        x, sr = sf.read(path)
        sf.write(path, x * gain, sr)


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory) -> Path:
    """RAVDESS (4 actors) at full level and EmoDB (4 speakers) 26 dB quieter, 16 kHz, 0.5–0.7 s clips."""
    root = tmp_path_factory.mktemp("two")
    make_ravdess(root, actors=range(1, 5), statements=(1, 2), sample_rate=16000, duration_s=0.5)
    make_emodb(root, speakers=("03", "08", "09", "10"), duration_s=0.6)
    _quieten(root, "emodb", 0.05)
    return root


def _dm(root: Path, cache: Path, **kw) -> SERDataModule:
    args = dict(root=str(root), corpora=["ravdess", "emodb"], label_set="ekman7", cache_dir=str(cache), duration_s=2.0,
                clip_length="whole", normalize="none", split="speaker", val_speakers=1, test_speakers=1,
                batch_size=64, progress=False)
    dm = SERDataModule(**{**args, **kw})
    dm.setup("fit")
    return dm


def test_statistics_of_known_values_and_their_pooling():
    rng = np.random.default_rng(0)
    a, b = rng.normal(-3.0, 2.0, size=(40, 64)), rng.normal(5.0, 0.5, size=(10, 64))  # (frames, mels)
    table = {}
    for name, x in (("a", a), ("b", b)):
        table[name] = stats_from_moments(len(x), x.size, x.sum(), (x ** 2).sum())
        assert table[name]["mean"] == pytest.approx(x.mean()) and table[name]["sd"] == pytest.approx(x.std())
        assert table[name]["frames"] == len(x)
    both = np.concatenate([a, b])
    pooled = pooled_stats(table)
    assert pooled["mean"] == pytest.approx(both.mean()) and pooled["sd"] == pytest.approx(both.std())
    assert pooled["frames"] == 50
    with pytest.raises(ValueError, match="zero spread"):
        stats_from_moments(2, 128, 128 * -4.0, 128 * 16.0)


def test_corpus_statistics_are_those_of_every_valid_frame(two_corpora, tmp_path):
    """Batched, padded computation = the log-mel of each clip on its own, all valid frames pooled."""
    dm = _dm(two_corpora, tmp_path / "c")
    fe = ByolLogMel()
    rows = dm.datasets["train"].rows
    table = compute_corpus_stats(fe, dm, rows)
    assert set(table) == {"ravdess", "emodb"}
    for corpus, stats in table.items():
        values = []
        for r in rows[dm.row_corpus[rows] == corpus]:
            n = int(dm.cache.lengths[r])
            wave = torch.from_numpy(np.asarray(dm.cache.waves[r, :n], dtype=np.float32))[None]
            x, frames = fe.log_mel(wave)
            values.append(x[0, :, : int(frames[0])].double().flatten())
        v = torch.cat(values)
        assert stats["mean"] == pytest.approx(v.mean().item(), rel=1e-6)
        assert stats["sd"] == pytest.approx(v.std(unbiased=False).item(), rel=1e-6)
        assert stats["frames"] == len(v) // 64 and stats["clips"] == len(values)
    # the quieter corpus (-26 dB: power x 1/400) sits ln(400) = 6.0 lower in natural-log mel
    assert table["ravdess"]["mean"] - table["emodb"]["mean"] == pytest.approx(np.log(400.0), abs=0.8)


def test_each_clip_of_a_mixed_batch_is_standardised_with_its_own_corpus(two_corpora, tmp_path):
    dm = _dm(two_corpora, tmp_path / "c", test_split="all", unknown_labels="unscorable")
    model = SERClassifier(BYOL, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    ds = dm.datasets["all"]
    table = compute_corpus_stats(model.network.encoder.frontend, dm, ds.rows)
    dm.set_norm_stats(mean_sd(table))
    batch = ds.__getitems__(list(range(len(ds))))  # every clip of both corpora in one batch
    assert isinstance(batch, WholeClipBatch) and batch.norm_stats.shape == (len(ds), 2)
    (wave, lengths, norm), _ = dm.on_after_batch_transfer(batch, training=False)
    corpus = dm.row_corpus[ds.rows]
    assert set(corpus) == {"ravdess", "emodb"}
    for name in ("ravdess", "emodb"):
        torch.testing.assert_close(norm[torch.from_numpy(corpus == name)],
                                   torch.tensor([table[name]["mean"], table[name]["sd"]]).expand(int((corpus == name).sum()), 2))
    fe = model.network.encoder.frontend

    def standardised(norm_or_none):
        x, frames = fe(wave, lengths, norm_or_none)
        valid = frame_mask(frames, x.shape[-1])[:, None, None, :].expand_as(x)
        return {c: x[torch.from_numpy(corpus == c)][valid[torch.from_numpy(corpus == c)]].double() for c in table}

    for v in standardised(norm).values():  # each corpus: mean 0, sd 1 over its frames
        assert abs(v.mean().item()) < 1e-3 and v.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-3)
    fixed = standardised(None)  # SERAB's fixed RAVDESS statistics: the quiet corpus far off-centre
    assert fixed["ravdess"].mean().item() - fixed["emodb"].mean().item() > 1.0
    # the network takes the per-clip statistics: the quiet corpus's logits change with them
    with torch.no_grad():
        assert not torch.allclose(model._logits((wave, lengths, norm)), model._logits((wave, lengths)))
    # clips outside the label set (EmoDB's boredom) are predicted with their corpus's statistics too
    boredom = sorted(dm.unscorable_rows.values())
    assert len(boredom) == 4 and set(dm.row_corpus[boredom]) == {"emodb"}
    np.testing.assert_allclose(dm.row_norm_stats[boredom], [[table["emodb"]["mean"], table["emodb"]["sd"]]] * 4,
                               rtol=1e-6)
    assert all(p in dm.class_names for p in predict_unscorable(model, dm, dm.dropped))
    with pytest.raises(ValueError, match="no norm statistics for corpus"):
        dm.set_norm_stats({"ravdess": (0.0, 1.0)})


def test_statistics_are_stored_with_the_model_and_restored(two_corpora, tmp_path):
    dm = _dm(two_corpora, tmp_path / "c")
    # as train.py does: the network first, its statistics, then the model built with them around that network
    built = build_network(BYOL, {"name": "logmel"}, dm.num_classes)
    table = training_norm_stats(built[1], dm, BYOL, run_dir=tmp_path / "run")
    model = SERClassifier(BYOL, {"name": "logmel"}, dm.class_names, corpus_stats=table, built=built)
    assert model.network is built[1] and "built" not in model.hparams
    written = json.loads((tmp_path / "run" / "norm_stats.json").read_text())
    assert {c: (s["mean"], s["sd"], s["frames"]) for c, s in written["corpora"].items()} == {
        c: (s["mean"], s["sd"], s["frames"]) for c, s in table.items()}
    assert written["corpora"]["emodb"]["source"] == "training clips"
    # a train split of clips only: the statistics come from the training speakers, not val/test
    train_rows = dm.datasets["train"].rows
    assert table["ravdess"]["clips"] == int((dm.row_corpus[train_rows] == "ravdess").sum())
    # the checkpoint keeps them in the hyper-parameters; a rebuilt model uses their pooled values by default
    import lightning.pytorch as pl

    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=1)
    trainer.strategy.connect(model)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=True)
    from ser_lightning.inference.checkpoint import load_classifier

    again = load_classifier(ckpt)
    assert again.corpus_stats == model.corpus_stats and set(again.corpus_stats) == {"ravdess", "emodb"}
    fe = again.network.encoder.frontend
    assert (fe.norm_mean, fe.norm_std) == pytest.approx((written["pooled"]["mean"], written["pooled"]["sd"]))
    assert (fe.norm_mean, fe.norm_std) != pytest.approx((-10.32, 5.00))
    # fixed statistics stay the default; per_corpus is refused where the input takes no statistics
    assert SERClassifier({"name": "byol_s"}, {"name": "logmel"}, dm.class_names).corpus_stats is None
    with pytest.raises(ValueError, match="model.norm_stats=per_corpus"):
        SERClassifier({"name": "homebrew_cnn", "norm_stats": "per_corpus"}, {"name": "logmel"}, dm.class_names)
    with pytest.raises(ValueError, match="model.norm_stats='corpus'"):
        SERClassifier({"name": "byol_s", "norm_stats": "corpus"}, {"name": "logmel"}, dm.class_names)


def test_frozen_feature_cache_key_follows_the_statistics(two_corpora, tmp_path):
    dm = _dm(two_corpora, tmp_path / "c")
    model = SERClassifier(BYOL, {"name": "logmel"}, dm.class_names).eval()
    dm.set_frontend(model.frontend)
    net = model.network
    fixed = encoder_identity(net, BYOL)
    assert encoder_identity(net, BYOL, None) == fixed  # fixed statistics: the key caches already have
    one = encoder_identity(net, BYOL, {"ravdess": (-6.0, 5.0), "emodb": (-12.0, 5.0)})
    other = encoder_identity(net, BYOL, {"ravdess": (-6.0, 5.0), "emodb": (-12.5, 5.0)})
    assert len({json.dumps(x, sort_keys=True) for x in (fixed, one, other)}) == 3
    model.set_corpus_stats(training_norm_stats(model.network, dm, BYOL))
    batch = dm.datasets["val"].__getitems__(list(range(len(dm.datasets["val"]))))
    with torch.no_grad():
        want = model._logits(dm.on_after_batch_transfer(batch, training=False)[0])
    cached = use_frozen_features(model.network, dm, BYOL, progress=False)
    index = json.loads((cached.directory / "index.json").read_text())
    assert index["identity"]["norm_stats"] == {c: list(ms) for c, ms in sorted(dm.norm_stats.items())}
    emb, _ = dm.on_after_batch_transfer(dm.datasets["val"].__getitems__(list(range(len(batch.target)))), training=False)
    with torch.no_grad():  # cached pooled states were computed with each clip's own corpus statistics
        torch.testing.assert_close(model._logits(emb), want, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_cross_corpus_run_with_per_corpus_statistics(two_corpora, tmp_path):
    out = tmp_path / "run"
    r = run_script("cross_corpus.py", "model=byol_s", "model.norm_stats=per_corpus", "cross.mode=train",
                   "cross.train=[ravdess]", "cross.corpora=[ravdess,emodb]", f"data.root={two_corpora}",
                   f"data.cache_dir={tmp_path / 'cache'}", "data.duration_s=2.0", "data.normalize=none",
                   "data.val_speakers=1", "data.test_speakers=1", "data.batch_size=16", "trainer.max_epochs=1",
                   "callbacks.progress_bar=null", cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "cross_corpus.csv", newline="") as fh:
        rows = {x["kind"]: x for x in csv.DictReader(fh)}
    assert rows["cross"]["target"] == "emodb" and rows["cross"]["norm_stats"] == "per_corpus (own clips)"
    assert rows["in-corpus test"]["norm_stats"] == "per_corpus (training clips)"
    assert "| per_corpus (own clips) |" in (out / "cross_corpus.md").read_text()
    trained = json.loads((out / "train" / "ravdess" / "norm_stats.json").read_text())["corpora"]
    target = json.loads((out / "eval" / "ravdess__emodb" / "norm_stats.json").read_text())["corpora"]
    assert set(trained) == {"ravdess"} and set(target) == {"emodb"} and target["emodb"]["source"] == "own clips"
    assert trained["ravdess"]["mean"] - target["emodb"]["mean"] > 4.0  # the quiet corpus got its own centre
    from ser_lightning.inference.checkpoint import load_classifier

    ckpt = out / "train" / "ravdess" / "checkpoints" / "best.ckpt"
    model = load_classifier(ckpt)
    assert model.corpus_stats["ravdess"]["mean"] == pytest.approx(trained["ravdess"]["mean"])
    assert model.network.encoder.frontend.norm_mean == pytest.approx(trained["ravdess"]["mean"])
    # eval.py on both corpora at once: RAVDESS keeps its stored statistics, EmoDB gets its own
    ev = tmp_path / "eval"
    r = run_script("eval.py", f"ckpt_path={ckpt}", "data=combined", "data.corpora=[ravdess,emodb]", "split=all",
                   f"data.root={two_corpora}", f"data.cache_dir={tmp_path / 'cache'}", cwd=ev)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((ev / "metrics.json").read_text())["norm_stats"] == {"emodb": "own clips",
                                                                           "ravdess": "training clips"}
    used = json.loads((ev / "norm_stats.json").read_text())["corpora"]
    assert used["ravdess"]["mean"] == pytest.approx(trained["ravdess"]["mean"])
    assert used["emodb"]["mean"] == pytest.approx(target["emodb"]["mean"])
