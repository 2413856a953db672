"""Optimisers and learning-rate schedules (``ser_lightning/modules/optim.py``), and the training
settings next to them: early stopping patience, gradient clipping, seed + deterministic mode."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ser_lightning.hardware import trainer_from_config
from ser_lightning.modules.optim import (
    DEFAULTS,
    build_optimizers,
    build_scheduler,
    check_optim_config,
)
from tests.conftest import REPO


def _lrs_per_step(settings: dict, total_steps: int, groups=(1.0,)) -> list[list[float]]:
    """Learning rate of every parameter group at each of ``total_steps`` optimiser steps (per-step schedules)."""
    cfg = check_optim_config(settings)
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": cfg["lr"] * m} for m in groups]
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    sched = build_scheduler(opt, cfg, total_steps=total_steps)
    assert sched["interval"] == "step"
    out = []
    for _ in range(total_steps):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched["scheduler"].step()
    return out


def _lrs_per_epoch(settings: dict, epochs: int) -> list[float]:
    cfg = check_optim_config(settings)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg["lr"])
    sched = build_scheduler(opt, cfg, max_epochs=epochs)
    assert sched["interval"] == "epoch"
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched["scheduler"].step()
    return out


# ------------------------------------------------------------------------- report 003's half cycle
@pytest.mark.parametrize("anneal", ["linear", "cos"])
def test_half_cycle_starts_at_peak_and_falls_monotonically_to_the_floor(anneal):
    lr, steps = 1e-3, 37
    curve = [g[0] for g in _lrs_per_step({"scheduler": "onecycle_half", "lr": lr, "anneal_strategy": anneal}, steps)]
    assert curve[0] == pytest.approx(lr, rel=1e-9)  # no warm-up: the first step runs at the peak
    assert all(b < a for a, b in zip(curve, curve[1:]))  # strictly decreasing
    assert curve[-1] == pytest.approx(0.0, abs=1e-12)  # the last step reaches min_lr (0)
    if anneal == "linear":  # report 003 §4.2: linear annealing, equal decrements
        steps_down = [a - b for a, b in zip(curve, curve[1:])]
        assert max(steps_down) == pytest.approx(min(steps_down), rel=1e-6)
    else:  # cosine: halfway down at the midpoint
        assert curve[(steps - 1) // 2] == pytest.approx(lr / 2, rel=1e-6)


def test_half_cycle_floor_and_backbone_ratio():
    curve = _lrs_per_step({"scheduler": "onecycle_half", "lr": 1e-3, "min_lr": 1e-5, "anneal_strategy": "linear"},
                          20, groups=(0.1, 1.0))
    assert curve[0] == pytest.approx([1e-4, 1e-3])
    assert curve[-1][1] == pytest.approx(1e-5)
    for backbone, head in curve:  # the backbone keeps its multiplier all the way down
        assert backbone == pytest.approx(0.1 * head, rel=1e-6)


def test_torch_onecycle_with_pct_start_zero_misses_the_peak():
    # Why onecycle_half is not OneCycleLR(pct_start=0): torch's first step is already past the peak.
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=10, pct_start=0.0, anneal_strategy="linear")
    assert opt.param_groups[0]["lr"] < 0.95e-3


def test_one_cycle_rises_from_lr_over_div_factor_to_the_peak_and_falls():
    # Report 003's fine-tuning pair: Adam 1e-4 one-cycle up to 1e-3 = lr 1e-3, div_factor 10.
    steps = 100
    curve = [g[0] for g in _lrs_per_step({"scheduler": "onecycle", "lr": 1e-3, "div_factor": 10.0,
                                          "pct_start": 0.3}, steps)]
    peak = max(range(steps), key=curve.__getitem__)
    assert curve[0] == pytest.approx(1e-4)
    assert curve[peak] == pytest.approx(1e-3, rel=1e-3) and abs(peak - 0.3 * steps) <= 1
    assert all(b >= a for a, b in zip(curve[: peak + 1], curve[1 : peak + 1]))
    assert all(b <= a for a, b in zip(curve[peak:], curve[peak + 1 :]))
    assert curve[-1] == pytest.approx(1e-4 / DEFAULTS["final_div_factor"], rel=1e-3)


# ------------------------------------------------------------------------- report 000's warm restarts
def test_warm_restarts_return_to_lr_every_t0_epochs():
    lr, t0 = 1e-3, 4
    curve = _lrs_per_epoch({"scheduler": "cosine_warm_restarts", "lr": lr, "t0_epochs": t0, "min_lr": 1e-5}, 13)
    restarts = [e for e, v in enumerate(curve) if v == pytest.approx(lr)]
    assert restarts == [0, 4, 8, 12]
    for start in restarts[:-1]:
        period = curve[start : start + t0]
        assert all(b < a for a, b in zip(period, period[1:]))
        assert period[t0 // 2] == pytest.approx((lr + 1e-5) / 2, rel=1e-6)  # cosine: midway at mid-period
    assert min(curve) >= 1e-5


def test_warm_restart_periods_grow_by_t_mult():
    curve = _lrs_per_epoch({"scheduler": "cosine_warm_restarts", "lr": 1e-3, "t0_epochs": 2, "t_mult": 2}, 15)
    assert [e for e, v in enumerate(curve) if v == pytest.approx(1e-3)] == [0, 2, 6, 14]


def test_cosine_and_none():
    cos = _lrs_per_epoch({"scheduler": "cosine", "lr": 1e-3, "min_lr": 1e-4}, 10)
    assert cos[0] == pytest.approx(1e-3) and all(b < a for a, b in zip(cos, cos[1:])) and cos[-1] > 1e-4
    # one half cosine over the run's max_epochs: lr_k = min + (lr - min)(1 + cos(pi k / epochs)) / 2
    assert cos == pytest.approx([1e-4 + 9e-4 * (1 + math.cos(math.pi * k / 10)) / 2 for k in range(10)], rel=1e-6)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    assert build_scheduler(opt, check_optim_config({"scheduler": "none"})) is None


# ------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"name": "sgd"}, r"optim\.name='sgd'"),
        ({"scheduler": "halfcycle"}, r"optim\.scheduler='halfcycle'"),
        ({"lr": 0.0}, r"optim\.lr=0\.0 must be positive"),
        ({"lr": float("nan")}, r"optim\.lr=nan must be a finite number"),
        ({"weight_decay": -1e-3}, r"optim\.weight_decay"),
        ({"pct_start": 1.0}, r"optim\.pct_start=1\.0"),
        ({"div_factor": 0}, r"optim\.div_factor"),
        ({"anneal_strategy": "exp"}, r"optim\.anneal_strategy='exp'"),
        ({"t0_epochs": 0}, r"optim\.t0_epochs=0 must be an integer >= 1"),
        ({"t0_epochs": 2.5}, r"optim\.t0_epochs=2\.5"),
        ({"t_mult": 0}, r"optim\.t_mult=0"),
        ({"lr": 1e-3, "min_lr": 1e-3}, r"optim\.min_lr=0\.001 must be >= 0 and below optim\.lr"),
        ({"T_0": 10}, r"optim\.T_0 is not a known setting"),
        ({"name": "lbfgs", "scheduler": "onecycle"}, r"optim\.name=lbfgs takes no learning-rate schedule"),
        ({"name": "lbfgs", "scheduler": "none", "line_search": "armijo"}, r"optim\.line_search='armijo'"),
        ({"name": "lbfgs", "scheduler": "none", "max_iter": 0}, r"optim\.max_iter=0"),
    ],
)
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        check_optim_config(settings)


def test_per_step_schedule_needs_a_finite_run():
    module = _Tiny({"scheduler": "onecycle_half"})
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    with pytest.raises(ValueError, match=r"optim\.scheduler=onecycle_half needs a finite run"):
        trainer.fit(module, train_dataloaders=_loader())


# ------------------------------------------------------------------------- through a Lightning fit
class _Tiny(pl.LightningModule):
    """A linear regression whose optimiser comes from :func:`build_optimizers`; records the lr of every
    step and logs a constant ``val/ua`` (never improving, for early stopping)."""

    def __init__(self, optim: dict) -> None:
        super().__init__()
        self.network = torch.nn.Linear(4, 1)
        self.optim = optim
        self.step_lrs: list[float] = []

    def training_step(self, batch, batch_idx):
        self.step_lrs.append(self.optimizers().param_groups[0]["lr"])
        x, y = batch
        return torch.nn.functional.mse_loss(self.network(x), y)

    def validation_step(self, batch, batch_idx):
        self.log("val/ua", 0.5)

    def configure_optimizers(self):
        return build_optimizers(self, self.optim)


def _loader(n: int = 8, batch: int = 2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    ds = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    return torch.utils.data.DataLoader(ds, batch_size=batch)


def _fit(module: pl.LightningModule, **trainer_kwargs) -> pl.Trainer:
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, **trainer_kwargs)
    trainer.fit(module, train_dataloaders=_loader(), val_dataloaders=_loader(2))
    return trainer


def test_lightning_steps_half_cycle_per_batch_and_restarts_per_epoch(one_thread):
    half = _Tiny({"name": "adam", "lr": 1e-3, "scheduler": "onecycle_half", "anneal_strategy": "linear"})
    _fit(half, max_epochs=3)  # 4 batches x 3 epochs = 12 optimiser steps
    assert len(half.step_lrs) == 12
    assert half.step_lrs[0] == pytest.approx(1e-3) and half.step_lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(b < a for a, b in zip(half.step_lrs, half.step_lrs[1:]))

    restarts = _Tiny({"name": "adam", "lr": 1e-3, "scheduler": "cosine_warm_restarts", "t0_epochs": 2})
    _fit(restarts, max_epochs=5)
    per_epoch = restarts.step_lrs[::4]
    assert all(len(set(restarts.step_lrs[e * 4 : e * 4 + 4])) == 1 for e in range(5))  # constant within an epoch
    assert per_epoch == pytest.approx([1e-3, 5e-4, 1e-3, 5e-4, 1e-3])


def _config(*overrides: str):
    """``conf/train.yaml`` with the homebrew CNN, whose model config sets no trainer keys."""
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        return compose("train", overrides=["model=homebrew_cnn", *overrides])


def test_early_stopping_patience_from_the_config_stops_the_fit(one_thread):
    cfg = _config("callbacks.early_stopping.patience=2")
    stopper = instantiate(cfg.callbacks.early_stopping)
    module = _Tiny({"scheduler": "none"})
    trainer = _fit(module, max_epochs=20, callbacks=[stopper])
    # val/ua never improves after epoch 0: epochs 1 and 2 use up the patience, the fit ends after epoch 2.
    assert trainer.current_epoch == 3 and stopper.stopped_epoch == 2


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping_from_the_config_bounds_the_update(algorithm, tmp_path, one_thread):
    clip = 0.01
    # ++: conf/trainer/cpu.yaml has no gradient_clip_algorithm key (Lightning's default is "norm").
    cfg = _config(f"trainer.gradient_clip_val={clip}", f"++trainer.gradient_clip_algorithm={algorithm}")

    class Steep(_Tiny):
        def training_step(self, batch, batch_idx):
            return 100.0 * self.network.weight.sum()  # gradient 100 on each of the 4 weights

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1.0)  # update = -gradient

    module = Steep({})
    before = module.network.weight.detach().clone()
    trainer = trainer_from_config(cfg.trainer, default_root_dir=str(tmp_path), logger=False, callbacks=[],
                          enable_checkpointing=False, enable_progress_bar=False, max_steps=1,
                          limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=_loader())
    update = module.network.weight.detach() - before
    if algorithm == "norm":
        assert update.norm().item() == pytest.approx(clip, rel=1e-4)  # unclipped: 100 * sqrt(4) = 200
    else:
        assert update.abs().max().item() == pytest.approx(clip, rel=1e-4)


def test_seed_and_deterministic_mode_repeat_a_fit_exactly(tmp_path, one_thread):
    cfg = _config("trainer.deterministic=true", "seed=123")
    weights = []
    try:
        for run in range(2):
            pl.seed_everything(cfg.seed, workers=True)
            module = _Tiny({"name": "adamw", "lr": 1e-2, "scheduler": "onecycle"})
            module.network.register_forward_pre_hook(lambda m, args: (args[0] + 0.1 * torch.randn_like(args[0]),))
            trainer = trainer_from_config(cfg.trainer, default_root_dir=str(tmp_path / str(run)), logger=False, callbacks=[],
                                  enable_checkpointing=False, enable_progress_bar=False, max_epochs=2,
                                  num_sanity_val_steps=0)
            assert torch.are_deterministic_algorithms_enabled()
            trainer.fit(module, train_dataloaders=_loader(), val_dataloaders=_loader(2))
            weights.append(torch.cat([p.detach().flatten() for p in module.parameters()]))
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(weights[0], weights[1])
    assert not math.isclose(weights[0].abs().sum().item(), 0.0)


def test_lbfgs_probe_converges_to_scikit_learns_logistic_regression(one_thread):
    """optim=lbfgs + its L2 penalty minimise scikit-learn's objective: the same weights come out."""
    from sklearn.linear_model import LogisticRegression

    from ser_lightning.modules.optim import l2_penalty

    g = torch.Generator().manual_seed(0)
    n, wd = 240, 1e-2
    y = torch.arange(n) % 3
    x = torch.randn(n, 5, generator=g) + 1.5 * torch.nn.functional.one_hot(y, 5).float()
    settings = {"name": "lbfgs", "lr": 1.0, "weight_decay": wd, "scheduler": "none", "max_iter": 50}

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.network = torch.nn.Linear(5, 3)

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            loss = torch.nn.functional.cross_entropy(self.network(xb), yb)
            return loss + l2_penalty(self, settings)

        def configure_optimizers(self):
            return build_optimizers(self, settings)

    probe = Probe()
    assert isinstance(probe.configure_optimizers(), torch.optim.LBFGS)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=n)  # full batch
    pl.Trainer(max_epochs=10, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(probe, train_dataloaders=loader)
    ref = LogisticRegression(C=1.0 / (wd * n), tol=1e-8, max_iter=5000).fit(x.numpy(), y.numpy())
    w, b = probe.network.weight.detach(), probe.network.bias.detach()
    # softmax weights are defined up to a per-feature constant across classes: compare centred ones
    torch.testing.assert_close(w - w.mean(0), torch.tensor(ref.coef_ - ref.coef_.mean(0), dtype=torch.float32),
                               atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(b - b.mean(), torch.tensor(ref.intercept_ - ref.intercept_.mean(), dtype=torch.float32),
                               atol=2e-3, rtol=2e-3)
    assert l2_penalty(probe, {**settings, "name": "adamw"}) is None


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("optim", ["lbfgs", "adamw"])
def test_classifier_training_loss_is_cross_entropy_plus_the_l2_term(optim, one_thread):
    """``SERClassifier.training_step`` (not only ``l2_penalty`` on its own) returns the objective L-BFGS minimises:
    the mean cross-entropy plus ``weight_decay / 2 · Σ‖W‖²`` over the trainable weight matrices, computed here by
    hand in float64 from the logits and the parameters; other optimisers get the cross-entropy alone (their
    weight decay is the optimiser's)."""
    import numpy as np

    from ser_lightning.modules.classifier import SERClassifier

    wd = 0.5  # large, so that the term is most of the loss
    torch.manual_seed(0)
    model = SERClassifier({"name": "homebrew_cnn"}, {"name": "logmel", "sample_rate": 16000}, ["a", "b", "c"],
                          optim={"name": optim, "lr": 1e-3, "weight_decay": wd, "scheduler": "none"})
    feats = model.frontend(0.1 * torch.randn(4, 8000, generator=torch.Generator().manual_seed(1)))
    target = torch.tensor([0, 2, 1, 2])
    loss = model.training_step((feats, target), 0)
    with torch.no_grad():
        logits = model._logits(feats).double().numpy()
    log_softmax = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(
        1, keepdims=True)
    cross_entropy = -np.mean([log_softmax[i, t] for i, t in enumerate(target.tolist())])
    matrices = [p.detach().double().numpy() for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    l2 = wd / 2 * sum(float((m ** 2).sum()) for m in matrices)
    assert matrices and l2 > cross_entropy  # the term is large enough that leaving it out cannot pass
    expected = cross_entropy + (l2 if optim == "lbfgs" else 0.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
