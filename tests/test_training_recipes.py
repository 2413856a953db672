"""Training recipes: mixup (soft targets), an EMA of the weights, class-balanced sampling."""

from __future__ import annotations

import json
from collections import Counter

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ser_lightning.callbacks.weight_averaging import EMAWeights
from ser_lightning.data.datamodule import BalancedClassSampler, SERDataModule
from ser_lightning.modules.classifier import SERClassifier
from ser_lightning.modules.mixup import check_mixup_alpha, mixup_batch, soft_cross_entropy
from tests.conftest import TINY_DATA, run_script

# ----------------------------------------------------------------------------------------------- mixup


@pytest.mark.parametrize("weight, smoothing", [(None, 0.0), (None, 0.1), ([1.0, 2.0, 0.5, 3.0], 0.0),
                                               ([1.0, 2.0, 0.5, 3.0], 0.2)])
def test_soft_cross_entropy_equals_torch_on_one_hot_targets(weight, smoothing):
    torch.manual_seed(0)
    logits, target = torch.randn(9, 4), torch.tensor([0, 1, 2, 3, 3, 3, 0, 1, 1])
    w = None if weight is None else torch.tensor(weight)
    plain = F.cross_entropy(logits, target, weight=w, label_smoothing=smoothing)
    soft = soft_cross_entropy(logits, F.one_hot(target, 4).float(), w, smoothing)
    assert torch.allclose(soft, plain, atol=1e-6)


def test_soft_cross_entropy_of_mixed_targets_is_the_mix_of_the_two_losses():
    torch.manual_seed(1)
    logits, a, b = torch.randn(6, 5), torch.randint(0, 5, (6,)), torch.randint(0, 5, (6,))
    lam = 0.3
    soft = lam * F.one_hot(a, 5).float() + (1 - lam) * F.one_hot(b, 5).float()
    expected = lam * F.cross_entropy(logits, a) + (1 - lam) * F.cross_entropy(logits, b)
    assert torch.allclose(soft_cross_entropy(logits, soft), expected, atol=1e-6)


def test_mixup_batch_mixes_inputs_and_targets_with_one_lambda():
    torch.manual_seed(2)
    x, y = torch.randn(16, 5, 7), torch.randint(0, 8, (16,))
    mixed, soft, lam, perm = mixup_batch(x, y, 8, alpha=0.4)
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == list(range(16))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm], atol=1e-6)
    assert soft.shape == (16, 8) and torch.allclose(soft.sum(1), torch.ones(16))
    expected = torch.zeros(16, 8)
    expected[torch.arange(16), y] += lam
    expected[torch.arange(16), y[perm]] += 1 - lam
    assert torch.allclose(soft, expected)


def test_mixup_lambda_follows_the_beta_distribution():
    torch.manual_seed(3)
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    small = np.array([mixup_batch(x, y, 2, 0.1)[2] for _ in range(2000)])
    one = np.array([mixup_batch(x, y, 2, 1.0)[2] for _ in range(2000)])
    # Beta(0.1, 0.1) piles up at 0 and 1; Beta(1, 1) is uniform (mean 1/2, variance 1/12).
    assert ((small < 0.1) | (small > 0.9)).mean() > 0.7
    assert abs(one.mean() - 0.5) < 0.03 and abs(one.var() - 1 / 12) < 0.01 and ((one > 0.4) & (one < 0.6)).mean() > 0.15


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf"), "lots", None])
def test_bad_mixup_alpha_is_one_line_naming_the_setting(alpha):
    with pytest.raises(ValueError, match=r"loss\.mixup_alpha"):
        check_mixup_alpha(alpha)


def _classifier(**kw):
    return SERClassifier(model={"name": "homebrew_cnn"}, features={"name": "logmel", "sample_rate": 16000, "n_mels": 64},
                         class_names=["a", "b", "c"], **kw)


def test_mixup_with_lbfgs_is_refused():
    with pytest.raises(ValueError, match=r"loss\.mixup_alpha=0\.2 cannot train with optim\.name=lbfgs"):
        _classifier(mixup_alpha=0.2, optim={"name": "lbfgs"})
    _classifier(mixup_alpha=0.0, optim={"name": "lbfgs"})  # off: fine


def test_training_step_alpha_zero_is_the_plain_loss_and_alpha_mixes(monkeypatch):
    torch.manual_seed(4)
    feats, target = torch.randn(6, 1, 64, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    for alpha in (0.0, 0.4):
        m = _classifier(mixup_alpha=alpha, class_weights=[1.0, 2.0, 3.0], label_smoothing=0.1).eval()
        monkeypatch.setattr(m, "log", lambda *a, **k: None)
        monkeypatch.setattr(m, "log_dict", lambda *a, **k: None)
        torch.manual_seed(5)
        loss = m.training_step((feats, target), 0)
        with torch.no_grad():
            plain = F.cross_entropy(m._logits(feats), target, weight=m.class_weight, label_smoothing=0.1)
        if alpha == 0.0:
            assert torch.allclose(loss, plain)
        else:
            torch.manual_seed(5)  # the same draws again: the loss is the soft-target loss of the mixed batch
            mixed, soft, _, _ = mixup_batch(feats, target, 3, alpha)
            with torch.no_grad():
                expected = soft_cross_entropy(m._logits(mixed), soft, m.class_weight, 0.1)
            assert torch.allclose(loss, expected, atol=1e-6) and not torch.allclose(loss, plain)


def test_mixup_of_whole_clips_keeps_the_longer_length():
    m = _classifier(mixup_alpha=1.0)
    torch.manual_seed(6)
    feats, lengths, target = torch.randn(5, 1, 64, 20), torch.tensor([3, 9, 20, 7, 12]), torch.arange(5) % 3
    torch.manual_seed(7)
    (mixed, mixed_len), soft, dominant = m._mixup((feats, lengths), target)
    torch.manual_seed(7)
    _, _, lam, perm = mixup_batch(feats, target, 3, 1.0)
    assert torch.equal(mixed_len, torch.maximum(lengths, lengths[perm]))
    assert torch.equal(dominant, target if lam >= 0.5 else target[perm])
    with pytest.raises(ValueError, match="model.norm_stats=per_corpus"):
        m._mixup((feats, lengths, torch.ones(5, 2)), target)


# ------------------------------------------------------------------------------------------------- EMA


class _Tiny(pl.LightningModule):
    """A trainable linear layer after a frozen one, SGD: weights move on every step."""

    def __init__(self):
        super().__init__()
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.frozen(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.cross_entropy(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.head.parameters(), lr=0.5)


class _Recorder(pl.Callback):
    """The raw weights after every optimiser step."""

    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def _loader(seed=0):
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)),
                      batch_size=8)


def _trainer(tmp_path, callbacks, epochs=2):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, callbacks=callbacks)


def test_ema_follows_the_decay_formula_and_leaves_frozen_weights_bit_exact(tmp_path):
    pl.seed_everything(0)
    model, ema, rec = _Tiny(), EMAWeights(decay=0.8), _Recorder()
    frozen_before = model.frozen.weight.detach().clone()
    _trainer(tmp_path, [rec, ema]).fit(model, _loader(), _loader(1))
    assert len(rec.steps) == 10  # 5 batches × 2 epochs
    expected = dict(rec.steps[0])
    for raw in rec.steps[1:]:
        expected = {k: 0.8 * expected[k] + 0.2 * raw[k] for k in raw}
    final_raw = rec.steps[-1]["head.weight"]
    # After fit the model holds the average (WeightAveraging.on_train_end), which differs from the raw weights.
    assert torch.allclose(model.head.weight, expected["head.weight"], atol=1e-6)
    assert torch.allclose(model.head.bias, expected["head.bias"], atol=1e-6)
    assert not torch.allclose(model.head.weight, final_raw, atol=1e-3)
    assert torch.equal(model.frozen.weight, frozen_before)  # lerp of equal values: no drift


def test_ema_weights_are_checkpointed_and_tested(tmp_path):
    pl.seed_everything(0)
    model = _Tiny()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val/loss", filename="best")
    trainer = _trainer(tmp_path, [EMAWeights(decay=0.7), ckpt], epochs=3)
    trainer.fit(model, _loader(), _loader(1))
    stored = torch.load(ckpt.best_model_path, weights_only=True)
    averaged, raw = stored["state_dict"], stored["current_model_state"]
    assert not torch.allclose(averaged["head.weight"], raw["head.weight"], atol=1e-4)
    # Testing the best checkpoint on the same trainer (as train.py does) scores the averaged weights.
    trainer.test(model, _loader(2), ckpt_path=ckpt.best_model_path, verbose=False, weights_only=True)
    assert torch.equal(model.head.weight, averaged["head.weight"])


@pytest.mark.parametrize("kw, setting", [({"decay": 1.0}, "decay"), ({"decay": 0.0}, "decay"), ({"decay": "x"}, "decay"),
                                         ({"decay": float("nan")}, "decay"), ({"start_step": -1}, "start_step"),
                                         ({"every_n_steps": 0}, "every_n_steps")])
def test_bad_ema_settings_name_the_setting(kw, setting):
    with pytest.raises(ValueError, match=rf"callbacks\.ema\.{setting}="):
        EMAWeights(**kw)


def test_ema_update_schedule():
    ema = EMAWeights(start_step=3, every_n_steps=2)
    assert [s for s in range(10) if ema.should_update(step_idx=s)] == [3, 5, 7, 9]
    assert not ema.should_update(epoch_idx=0)


# ------------------------------------------------------------------------------------- balanced sampling


def test_balanced_sampler_draws_classes_in_equal_shares():
    labels = np.array([0] * 300 + [1] * 20 + [2] * 80)
    sampler = BalancedClassSampler(labels, seed=1)
    draws = []
    for epoch in range(10):
        sampler.set_epoch(epoch)
        draws += list(sampler)
    assert len(draws) == 10 * len(labels)
    shares = np.bincount(labels[draws], minlength=3) / len(draws)
    assert np.allclose(shares, 1 / 3, atol=0.02), shares
    # Seeded per epoch: the same epoch draws the same items, another epoch other ones.
    sampler.set_epoch(3)
    first = list(sampler)
    again = BalancedClassSampler(labels, seed=1)
    again.set_epoch(3)
    assert list(again) == first
    sampler.set_epoch(4)
    assert list(sampler) != first


def test_bad_sampler_setting_is_one_line():
    with pytest.raises(ValueError, match=r"data\.sampler='uniform' is not one of \[None, 'balanced'\]"):
        SERDataModule(root="/nonexistent", sampler="uniform")


def test_balanced_sampler_in_the_training_loader_only(tiny_ravdess, tmp_path):
    dm = SERDataModule(root=str(tiny_ravdess), cache_dir=str(tmp_path / "cache"), sampler="balanced", split="speaker",
                       val_speakers=2, test_speakers=2, duration_s=1.0, batch_size=8, progress=False)
    dm.setup()
    keep = np.flatnonzero(dm.datasets["train"].labels != 0)[:40]  # make the training split imbalanced
    tr = dm.datasets["train"]
    tr.rows, tr.labels = np.concatenate([tr.rows, tr.rows[keep]]), np.concatenate([tr.labels, tr.labels[keep]])
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, BalancedClassSampler) and len(loader.sampler) == len(tr.labels)
    counts = Counter()
    for epoch in range(20):
        loader.sampler.set_epoch(epoch)
        counts.update(tr.labels[list(loader.sampler)].tolist())
    shares = np.array([counts[c] for c in range(8)]) / sum(counts.values())
    assert np.allclose(shares, 1 / 8, atol=0.02), shares
    for other in (dm.val_dataloader(), dm.test_dataloader()):
        assert not isinstance(other.sampler, BalancedClassSampler)
        assert [int(i) for i in other.sampler] == list(range(len(other.dataset)))  # fixed order


# --------------------------------------------------------------------------------------------- train.py


def test_train_py_with_mixup_ema_and_balanced_sampling(tiny_ravdess, tmp_path):
    run = tmp_path / "run"
    r = run_script("train.py", "model=homebrew_cnn", f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}",
                   "trainer.max_epochs=2", "callbacks.progress_bar=null", "callbacks=ema", "callbacks.ema.decay=0.9",
                   "loss.mixup_alpha=0.4", "data.sampler=balanced", "callbacks.last_checkpoint=null", *TINY_DATA, cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["best_val_ua"] is not None
    stored = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert stored["hyper_parameters"]["mixup_alpha"] == 0.4
    assert stored["datamodule_hyper_parameters"]["sampler"] == "balanced"
    averaged, raw = stored["state_dict"], stored["current_model_state"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged if averaged[k].is_floating_point())
    bad = run_script("train.py", "model=homebrew_cnn", "callbacks=ema", "callbacks.ema.decay=1.5",
                     f"data.root={tiny_ravdess}", cwd=tmp_path / "bad")
    assert bad.returncode != 0
    assert "error: callbacks.ema.decay=1.5 must be a number in (0, 1) (e.g. 0.99)\n" in bad.stderr  # one line, no traceback
    assert "Traceback" not in bad.stderr and "InstantiationException" not in bad.stderr
