"""``train.py``: fit with early stopping on validation UA, keep the best checkpoint, test it.

The run directory (Hydra's output dir) ends up holding ``.hydra/`` (composed config and
overrides), ``config_resolved.yaml``, ``split.csv``, ``skipped.csv``, ``class_counts.csv``,
``checkpoints/best.ckpt`` and ``last.ckpt`` (and ``refit.ckpt`` with ``refit=true``), ``csv/metrics.csv`` (per-epoch log), ``curves.png``
(loss and UA per epoch, train and validation, drawn from that log after ``fit``),
``metrics.json`` (test UA, WA, macro-F1, per-class recall, confusion matrix, label names),
``test_predictions.csv`` (one row per test clip: path, corpus, speaker, label, prediction, class
probabilities of the model reported) and ``confusion_matrix.png``; with ``model.norm_stats=per_corpus`` also ``norm_stats.json`` (each
training corpus's log-mel mean and sd, :mod:`ser_lightning.modules.norm_stats`).

``refit=true`` adds a second stage (the usual "choose on validation, then refit" protocol): the
number of epochs of the best checkpoint — chosen on the validation speakers — is kept, and a fresh
model (same seed) is trained for that many epochs on the training *and* validation speakers, then
tested. ``metrics.json`` then reports that refitted model (``checkpoint``: ``refit.ckpt``), with
the validation-selected model's test metrics under ``selected_model`` and the refit's facts under
``refit``. The test speakers are never used to choose anything. Under ``trainer.fast_dev_run`` (which saves
no checkpoint) the refit is skipped with a one-line note, as ``debug=fast`` turns it off.

Multi-process training (``trainer=ddp``, ``trainer=ddp_sim``, ``torchrun``, SLURM): every
process runs :func:`train`; only global rank 0 writes the run files, and after ``fit`` only
rank 0 tests the best checkpoint, on one device, so that no test clip is counted twice
(``DistributedSampler`` pads the last batch by repeating clips).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ser_lightning.callbacks.epoch_timer import EpochTimer
from ser_lightning.callbacks.resume import prepare_resume
from ser_lightning.cli.common import (
    build_classifier,
    build_trainer,
    finish_wandb,
    plain_settings,
    quiet_known_warnings,
    single_device_overrides,
)
from ser_lightning.cli.validate import validate_config
from ser_lightning.distributed import install_sigterm_watchdog
from ser_lightning.evaluation.report import collect_metrics, write_metrics, write_predictions
from ser_lightning.evaluation.results import plot_curves
from ser_lightning.hardware import describe_trainer
from ser_lightning.inference.checkpoint import read_checkpoint
from ser_lightning.modules.classifier import SERClassifier
from ser_lightning.modules.frozen_features import frozen_feature_path, use_frozen_features
from ser_lightning.modules.norm_stats import training_norm_stats

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig, run_dir: str | Path | None, full_batch: bool = False):
    """Instantiate ``cfg.data`` (a ``SERDataModule``) with ``cfg.augment`` and the run directory.

    ``full_batch``: serve the whole training set as one batch on the frozen-feature path (a full-batch optimiser,
    ``optim.name=lbfgs``: :func:`full_batch_overrides`)."""
    return instantiate(cfg.data, augment=plain_settings(cfg.get("augment")), run_dir=str(run_dir) if run_dir else None,
                       full_batch_training=bool(full_batch), _convert_="all")


def build_module(cfg: DictConfig, dm, corpus_stats: dict | None = None, built: tuple | None = None) -> SERClassifier:
    """:func:`~ser_lightning.cli.common.build_classifier` for the data module's classes, training
    class counts (per corpus too with ``data.corpus_weights``) and clip length, with the training corpora's
    statistics (``model.norm_stats=per_corpus``) and an already built ``(frontend, network)`` when given."""
    corpus_counts = dm.train_corpus_class_counts() if cfg.data.get("corpus_weights") else None
    return build_classifier(cfg, dm.class_names, dm.audio_cfg.num_samples, dm.train_class_counts(), corpus_counts,
                            corpus_stats=corpus_stats, built=built)


def build_frontend_and_network(cfg: DictConfig, dm) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The model's ``(frontend, network)`` for the data module's classes and clip length
    (:func:`~ser_lightning.models.build_network`), built before the ``SERClassifier`` so that the inputs it
    needs (corpus statistics, the frozen-feature cache) are ready when it is built."""
    from ser_lightning.models import build_network

    return build_network(plain_settings(cfg.model), plain_settings(cfg.get("features")), dm.num_classes,
                         dm.audio_cfg.num_samples)


def check_multirun_ddp(trainer: pl.Trainer, strategy_setting: Any = None) -> None:
    """Refuse a Hydra multirun whose trainer would start processes by re-running the script.

    Lightning's ``ddp`` strategy (and ``auto`` with more than one device or node) starts the
    other processes by re-running ``python train.py <same arguments>``; under ``-m`` each of
    them starts the whole sweep again, its jobs fall out of step with the main process's, and
    the collectives hang (NCCL) or fail ("Connection closed by peer", gloo). Safe in a multirun
    are strategies that start workers inside each ``fit`` (``ddp_spawn``) and the submitit SLURM
    launcher, where every job gets its own allocation and SLURM starts the processes. Under
    ``torchrun``/``srun python train.py -m`` every process runs the sweep, but rank 0 tests
    alone after each job and ends the process group, so the ranks fall out of step there too:
    refused as well.

    Args:
        trainer: The trainer about to fit.
        strategy_setting: ``cfg.trainer.strategy``, named in the message.

    Raises:
        ValueError: a multirun with the basic (or any non-SLURM) Hydra launcher and a
            multi-process trainer whose processes are started by re-running the script.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    if trainer.world_size <= 1 or not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return
    if not isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        return  # ddp_spawn / ddp_fork: workers are started (and end) inside each job's fit
    external = trainer.strategy.cluster_environment.creates_processes_externally
    if external and str(hydra_cfg.launcher.get("_target_", "")).endswith("SlurmLauncher"):
        return  # submitit: one SLURM allocation per job, processes started by SLURM
    launcher = hydra_cfg.runtime.choices.get("hydra/launcher", "basic")
    raise ValueError(
        f"trainer.strategy={strategy_setting} with {trainer.world_size} processes cannot run in a Hydra multirun (-m)"
        f" with hydra/launcher={launcher}: Lightning would re-run the whole sweep in every extra process, out of step"
        " with this one (a hang or a crash)."
        " Run one `python train.py ...` per configuration, or add trainer.strategy=ddp_spawn (one machine),"
        " or use hydra/launcher=slurm (each job its own SLURM allocation)"
    )


def full_batch_overrides(cfg: DictConfig) -> dict[str, Any]:
    """Trainer arguments that let a full-batch optimiser (``optim.name=lbfgs``) run on several processes.

    L-BFGS steps on one fixed objective, re-evaluated by its line search as often as that needs. Under
    DDP each process would otherwise fit its own shard of the training set (Lightning's
    ``DistributedSampler``): the losses differ, so the line searches take different numbers of
    forward/backward passes, hence of gradient all-reduces, and the processes wait for each other for
    ever. With ``use_distributed_sampler=False`` every process loads the whole training set (the
    frozen-feature path reads the same cached frozen features, in one batch: ``dm.full_batch_training``), so
    every process computes the same full-batch objective, and the classifier
    hands every process's optimiser the mean loss over the processes
    (:func:`~ser_lightning.modules.optim.same_objective_on_every_process`), so their decisions agree even
    where the floating point does not. On 2 processes the fit is the one-process fit (the all-reduced
    mean of two equal numbers is that number). Validation then also runs on every clip in every process
    (its metrics are synchronised as usual, and no clip is repeated for padding). No effect on one device.

    Args:
        cfg: The composed ``conf/train.yaml``.

    Returns:
        ``{"use_distributed_sampler": False}`` for ``optim.name=lbfgs``, else ``{}``.
    """
    return {"use_distributed_sampler": False} if _full_batch(cfg) else {}


def _spawned(trainer: pl.Trainer) -> bool:
    """True when ``trainer`` fits in worker processes it starts itself (``ddp_spawn``, ``ddp_fork``)."""
    from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher

    return trainer.world_size > 1 and isinstance(trainer.strategy.launcher, _MultiProcessingLauncher)


def _restore_best_score(trainer: pl.Trainer) -> None:
    """After ``ddp_spawn``: put the best checkpoint's score back into the main process.

    ``ddp_spawn`` trains in worker processes; Lightning sends back the best checkpoint's path,
    the last weights and the last logged metrics (``_MultiProcessingLauncher``), not the best
    score, loop progress or other callback state. ``best.ckpt`` holds the checkpoint callback's
    state as of its own saving, best score included.
    """
    cb = trainer.checkpoint_callback
    if cb is None or cb.best_model_score is not None or not Path(cb.best_model_path or "").is_file():
        return
    ckpt = read_checkpoint(cb.best_model_path)
    state = ckpt.get("callbacks", {}).get(cb.state_key)
    if state and state.get("best_model_score") is not None:
        cb.best_model_score = state["best_model_score"]


def _epochs_from_last_checkpoint(out_dir: Path) -> int | None:
    """After ``ddp_spawn``/``ddp_fork``: the epochs the workers trained, from ``checkpoints/last.ckpt`` (written at
    every epoch's end by ``callbacks.last_checkpoint``; its ``epoch`` is the 0-based index of the last one), or
    ``None`` without that file."""
    path = out_dir / "checkpoints" / "last.ckpt"
    return int(read_checkpoint(path).get("epoch", -1)) + 1 if path.is_file() else None


def _tester(cfg: DictConfig, trainer: pl.Trainer) -> pl.Trainer:
    """The trainer that runs the test: ``trainer`` itself when it fitted in one process, else a
    fresh single-device trainer on rank 0's device that logs to the same loggers."""
    if trainer.world_size == 1:
        return trainer
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # The other ranks have left; metrics must not try to synchronise with them.
        torch.distributed.destroy_process_group()
    tester = build_trainer(cfg, **single_device_overrides(trainer), logger=trainer.loggers or False)
    # Log the test metrics at the fit's last step and epoch, as a single-process run does.
    tester.fit_loop.load_state_dict(trainer.fit_loop.state_dict())
    log.info("testing on one device (%s) instead of %d processes, so that every test clip counts once",
             tester.strategy.root_device, trainer.world_size)
    return tester


def write_curves(trainer: pl.Trainer, out_dir: Path, title: str = "") -> Path | None:
    """Draw ``<out_dir>/curves.png`` from the trainer's CSV log (``logger=csv``, the default).

    Args:
        trainer: The trainer after ``fit``.
        out_dir: The run directory.
        title: Figure title.

    Returns:
        The PNG path, or ``None`` (logged) without a CSV logger or per-epoch values.
    """
    from lightning.pytorch.loggers import CSVLogger

    logs = [Path(lg.log_dir) / "metrics.csv" for lg in trainer.loggers if isinstance(lg, CSVLogger)]
    if not logs:
        log.info("no curves.png: this run has no CSV logger (logger=csv adds one)")
        return None
    if not logs[0].is_file():
        log.info("no curves.png: the CSV logger wrote no %s (fast_dev_run suppresses logging)", logs[0])
        return None
    path = plot_curves(logs[0], out_dir / "curves.png", title=title)
    if path:
        log.info("training curves: %s", path)
    return path


def refit_on_all_speakers(cfg: DictConfig, dm, best_checkpoint: str, out_dir: Path, device_overrides: dict,
                          corpus_stats: dict | None = None) -> tuple[SERClassifier, dict, dict]:
    """Train a fresh model on the training + validation speakers for the best checkpoint's epochs, and test it.

    Args:
        cfg: The composed ``conf/train.yaml``.
        dm: The set-up data module (its validation split is merged into training here).
        best_checkpoint: The validation-selected checkpoint (its ``epoch`` sets the budget).
        out_dir: The run directory (``checkpoints/refit.ckpt`` is written there).
        device_overrides: Trainer arguments for one device (:func:`single_device_overrides`).
        corpus_stats: The first model's per-corpus log-mel statistics (``model.norm_stats=per_corpus``),
            which the data module's batches and cached frozen features already use; the refit keeps them.

    Returns:
        ``(model, logged, facts)``: the tested model, what ``trainer.test`` logged (``test/ua``, ...)
        and ``{"epochs", "train_clips", "train_speakers", "checkpoint", "fit_s"}``.

    Raises:
        ValueError: no best checkpoint to take the epoch count from.
    """
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

    from ser_lightning.callbacks.wandb_dashboard import WandbDashboard
    from ser_lightning.cli.common import build_callbacks

    if not best_checkpoint:
        raise ValueError("refit=true needs the validation-selected checkpoint (callbacks.model_checkpoint) "
                         "to take the number of epochs from")
    epochs = int(read_checkpoint(best_checkpoint).get("epoch", 0)) + 1
    n_speakers = dm.merge_validation_into_training()
    pl.seed_everything(cfg.seed, workers=True)
    model = build_module(cfg, dm, corpus_stats=corpus_stats)
    drop = (ModelCheckpoint, EarlyStopping, LearningRateMonitor, WandbDashboard)  # nothing to validate or log
    callbacks = [c for c in build_callbacks(cfg.get("callbacks")) if not isinstance(c, drop)]
    trainer = build_trainer(cfg, **device_overrides, max_epochs=epochs, max_steps=-1, limit_val_batches=0,
                            num_sanity_val_steps=0, enable_checkpointing=False, callbacks=callbacks, logger=False)
    log.info("refit: %d epoch(s) (the best checkpoint's) on the training + validation speakers", epochs)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    fit_s = time.perf_counter() - start
    path = out_dir / "checkpoints" / "refit.ckpt"
    trainer.save_checkpoint(path)
    logged = trainer.test(model, datamodule=dm, verbose=False, weights_only=True)[0]
    return model, logged, {"epochs": epochs, "train_clips": len(dm.datasets["train"]),
                            "train_speakers": n_speakers, "checkpoint": str(path), "fit_s": round(fit_s, 1)}


def _full_batch(cfg: DictConfig) -> bool:
    """Whether the optimiser is a full-batch method (``optim.name=lbfgs``): its training batch is the whole set."""
    return (cfg.get("optim") or {}).get("name") == "lbfgs"


def _no_holdout_overrides(cfg: DictConfig) -> dict[str, Any]:
    """Trainer arguments of ``data.split=all``: nothing to validate, no best checkpoint, no log of validation."""
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

    from ser_lightning.callbacks.wandb_dashboard import WandbDashboard
    from ser_lightning.cli.common import build_callbacks

    drop = (ModelCheckpoint, EarlyStopping, LearningRateMonitor, WandbDashboard)
    return {"callbacks": [c for c in build_callbacks(cfg.get("callbacks"), run_config=cfg) if not isinstance(c, drop)],
            "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_checkpointing": False}


def _write_final(trainer: pl.Trainer, model: SERClassifier, dm, out_dir: Path, start: float, extraction: dict | None,
                 weights: str, n_params: int) -> None:
    """``data.split=all``: save ``checkpoints/final.ckpt`` and a ``metrics.json`` of training facts (no test)."""
    import json

    path = out_dir / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(path)
    utts = dm.split_utterances("train")
    facts = {"split": "all (every clip trains; nothing validated or tested)", "checkpoint": str(path),
             "epochs": int(trainer.current_epoch), "train_clips": len(utts),
             "train_speakers": len({u.speaker for u in utts}),
             "train_corpora": {c: sum(u.corpus == c for u in utts) for c in sorted({u.corpus for u in utts})},
             "labels": list(model.class_names), "class_counts": dict(zip(model.class_names, dm.train_class_counts())),
             "parameters": n_params, "weights": weights, "frozen_features": extraction,
             "wall_time_s": round(time.perf_counter() - start, 1), "run_dir": str(out_dir)}
    (out_dir / "metrics.json").write_text(json.dumps(facts, indent=2))
    log.info("final model (data.split=all): %d epoch(s) on %d clips of %d speakers: %s", facts["epochs"],
             facts["train_clips"], facts["train_speakers"], path)
    return None


@dataclass
class _Run:
    """What :func:`validate_and_start` settles: the trainer, the run directory, this process's role, the clock."""

    trainer: pl.Trainer
    out_dir: Path
    is_zero: bool
    every_clip: bool  # data.split=all: the final model (no validation, no test)
    start: float


@dataclass
class _Inputs:
    """What :func:`prepare_inputs` made and decided for the model (metrics.json reports it)."""

    built: tuple  # (frontend, network): the model is built around them
    n_params: int
    input_shape: list[int]
    weights: str
    why: str  # the training input: waveform path or frozen-feature path, and why
    extraction: dict | None  # the frozen-feature cache used (None: the waveform path)
    norm_stats: dict | None  # the training corpora's statistics (model.norm_stats=per_corpus), or None


@dataclass
class _Fitted:
    """What :func:`fit` leaves for testing (rank 0)."""

    epochs: int | None
    fit_metrics: dict
    best: str
    best_val: Any


@dataclass
class _Tested:
    """The reported model's test: its metrics, the tester, and the refit's model and facts (``refit=true``)."""

    metrics: dict
    tester: pl.Trainer
    checkpoint: str | None
    refit: dict | None = None
    refit_model: SERClassifier | None = None


def validate_and_start(cfg: DictConfig) -> _Run:
    """Check the settings (before any audio is decoded or another process starts), build the trainer, write the
    resolved config (rank 0) and seed every generator."""
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    validate_config(cfg)  # bad settings fail here, before any audio is decoded or any other process starts
    every_clip = cfg.data.get("split") == "all"  # the final model: no validation, no test
    trainer = build_trainer(cfg, **full_batch_overrides(cfg), **(_no_holdout_overrides(cfg) if every_clip else {}))
    check_multirun_ddp(trainer, cfg.trainer.get("strategy", "auto"))
    if trainer.world_size > 1:
        install_sigterm_watchdog()  # every process of the run ends within seconds of a SIGTERM
    is_zero = trainer.is_global_zero
    if is_zero:
        (out_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)
    return _Run(trainer, out_dir, is_zero, every_clip, time.perf_counter())


def build_data(cfg: DictConfig, run: _Run):
    """The data module: decoded into the cache once per machine, then split (``setup("fit")``)."""
    dm = build_datamodule(cfg, run.out_dir if run.is_zero else None,  # split.csv etc.: rank 0 only
                          full_batch=_full_batch(cfg))
    if run.trainer.local_rank == 0:
        # Decode into the cache once per machine; other ranks open it in setup() (the cache's file
        # lock makes them wait for a build in progress).
        dm.prepare_data()
    dm.setup("fit")
    return dm


def prepare_inputs(cfg: DictConfig, run: _Run, dm) -> _Inputs:
    """What the model is built with: its frontend and network, the training corpora's statistics
    (``model.norm_stats=per_corpus``, also handed to the data module's batches) and the training input: the
    frozen-feature path (the frozen encoder's pooled states, extracted once into the frozen-feature cache, which
    the data module then serves) or the waveform path."""
    frontend, network = build_frontend_and_network(cfg, dm)
    settings = plain_settings(cfg.model)
    norm_stats = training_norm_stats(network, dm, settings, run.out_dir if run.is_zero else None)
    n_params = sum(p.numel() for p in (*frontend.parameters(), *network.parameters()))
    with torch.no_grad():
        input_shape = list(frontend(torch.zeros(1, dm.audio_cfg.num_samples)).shape[1:])
    weights = str(getattr(network, "weights_source", "random initialisation"))
    log.info("model %s: %d parameters; weights: %s", cfg.model.name, n_params, weights)
    cached_path, why = frozen_feature_path(network, dm, settings)
    log.info("training input: %s", why)
    if cfg.data.get("corpus_weights") and not cached_path:
        raise ValueError(f"data.corpus_weights={cfg.data.corpus_weights} weighs cached frozen features, and "
                         f"this run trains on {why}; use data.sampler=balanced or drop data.corpus_weights")
    extraction = None
    if cached_path:
        trainer = run.trainer
        accelerator = "gpu" if trainer.strategy.root_device.type == "cuda" else "cpu"
        cached = use_frozen_features(network, dm, settings, accelerator=accelerator,
                                     progress=bool(cfg.trainer.get("enable_progress_bar", True)), trainer=trainer)
        extraction = {"feature_cache": str(cached.directory), "built": cached.built, "extract_s": cached.extract_s,
                      "extract_processes": cached.extract_processes, "clips_per_process": cached.clips_per_process,
                      **({"windows": cached.windows} if cached.windows else {}),
                      **({"views": cached.views} if cached.views else {})}
        log.info("frozen-feature cache %s: %s", cached.directory,
                 f"computed in {cached.extract_s} s by {cached.extract_processes} process(es) "
                 f"({' + '.join(map(str, cached.clips_per_process))} clips)" if cached.built
                 else f"reused (checked by {cached.extract_processes} process(es))")
    return _Inputs((frontend, network), int(n_params), input_shape, weights, why, extraction, norm_stats)


def build_model(cfg: DictConfig, dm, inputs: _Inputs) -> SERClassifier:
    """The ``SERClassifier`` around the prepared frontend and network, for the data module's classes, with the
    training corpora's statistics; the data module's batch path uses its frontend (it asks the trainer's model)."""
    return build_module(cfg, dm, corpus_stats=inputs.norm_stats, built=inputs.built)


def fit(cfg: DictConfig, run: _Run, dm, model: SERClassifier) -> _Fitted | None:
    """``trainer.fit`` (resuming from ``ckpt_path``); on rank 0, the curves and what testing needs (``None`` on the
    other ranks)."""
    trainer = run.trainer
    trainer.fit(model, datamodule=dm, ckpt_path=prepare_resume(cfg.get("ckpt_path"), run.out_dir, write_log=run.is_zero),
                weights_only=True)
    if not trainer.is_global_zero or run.every_clip:
        return None
    spawned = _spawned(trainer)
    if spawned:
        _restore_best_score(trainer)
    write_curves(trainer, run.out_dir, title=f"{cfg.model.name}: {run.out_dir.name}")
    # ddp_spawn/ddp_fork: the workers' epoch count and timings do not come back to this process; the epoch count
    # is read from the last checkpoint they wrote (callbacks.last_checkpoint), else unknown (None).
    epochs = _epochs_from_last_checkpoint(run.out_dir) if spawned else int(trainer.current_epoch)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best_val = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    return _Fitted(epochs, dict(trainer.callback_metrics), best, best_val)


def test(cfg: DictConfig, run: _Run, dm, model: SERClassifier, fitted: _Fitted) -> _Tested:
    """Test the validation-selected (best) checkpoint on one device (rank 0)."""
    tester = _tester(cfg, run.trainer)
    logged = tester.test(model, datamodule=dm, ckpt_path=fitted.best or None, verbose=False, weights_only=True)
    metrics = collect_metrics(logged[0], model.test_results, dm.hparams.test_split)
    return _Tested(metrics, tester, fitted.best or None)


def refit(cfg: DictConfig, run: _Run, dm, model: SERClassifier, fitted: _Fitted, inputs: _Inputs,
          tested: _Tested) -> _Tested:
    """``refit=true``: a fresh model trained on the training + validation speakers for the chosen epochs, tested and
    reported (the validation-selected model's test metrics kept under ``selected_model``)."""
    if not cfg.get("refit"):
        return tested
    if run.trainer.fast_dev_run:
        log.info("refit skipped: trainer.fast_dev_run saves no checkpoint to take the epoch count from (as debug=fast)")
        return tested
    selected = {k: tested.metrics[k] for k in ("ua", "wa", "macro_f1")}
    log.info("validation-selected model: test UA %.4f  WA %.4f  macro-F1 %.4f", *selected.values())
    refit_model, refit_logged, facts = refit_on_all_speakers(cfg, dm, fitted.best, run.out_dir,
                                                             single_device_overrides(tested.tester), inputs.norm_stats)
    metrics = collect_metrics(refit_logged, refit_model.test_results, dm.hparams.test_split)
    metrics["selected_model"] = {**selected, "checkpoint": fitted.best or None}
    return _Tested(metrics, tested.tester, facts["checkpoint"], facts, refit_model)


def write_results(cfg: DictConfig, run: _Run, dm, model: SERClassifier, inputs: _Inputs, fitted: _Fitted,
                  tested: _Tested) -> dict:
    """``metrics.json`` (the reported model's test metrics and the run's facts) and ``test_predictions.csv``."""
    trainer = run.trainer
    metrics = tested.metrics
    timers = [c for c in trainer.callbacks if isinstance(c, EpochTimer)]
    epoch_s = timers[0].epoch_times_s if timers and timers[0].epoch_times_s else None
    metrics.update(
        best_checkpoint=fitted.best or None,
        checkpoint=tested.checkpoint,
        refit=tested.refit,
        best_val_ua=float(fitted.best_val) if fitted.best_val is not None else None,
        epochs=fitted.epochs,
        parameters=inputs.n_params,
        input_shape=inputs.input_shape,
        train_epoch_s=round(sum(epoch_s) / len(epoch_s), 2) if epoch_s else None,
        wall_time_s=round(time.perf_counter() - run.start, 1),
        model=cfg.model.name,
        world_size=int(trainer.world_size),
        hardware=describe_trainer(trainer),
        weights=inputs.weights,
        run_dir=str(run.out_dir),
        training_input=inputs.why,
        protocol=dm.protocol,
        frozen_features=inputs.extraction,
        norm_stats=inputs.norm_stats or "fixed",
    )
    if hasattr(model.network, "member_weights"):  # report 000's jointly trained ensemble
        metrics["member_weights"] = model.network.member_weights()
        log.info("learned ensemble weights: %s", metrics["member_weights"])
    reported = tested.refit_model if tested.refit else model
    scored = reported.test_results["logits"]
    # the test loader serves the split's clips in order; fast_dev_run / trainer.limit_test_batches score its first ones
    write_predictions(run.out_dir / "test_predictions.csv", dm.split_utterances(dm.hparams.test_split)[:len(scored)],
                      reported.class_names, scored, reported.test_results["targets"])
    path = write_metrics(metrics, run.out_dir)
    log.info("test UA %.4f  WA %.4f  macro-F1 %.4f  (%s)", metrics["ua"], metrics["wa"], metrics["macro_f1"], path)
    return metrics


def _optimized_value(cfg: DictConfig, metrics: dict, fitted: _Fitted, tested: _Tested) -> float | None:
    """The value of ``cfg.optimized_metric`` for Hydra sweepers (``None`` when it was not logged)."""
    name = cfg.get("optimized_metric")
    if name == "val/ua" and metrics["best_val_ua"] is not None:
        return metrics["best_val_ua"]
    value = {**fitted.fit_metrics, **tested.tester.callback_metrics}.get(name) if name else None
    return float(value) if value is not None else None


def train(cfg: DictConfig) -> float | None:
    """Train and test one configuration: validate → build the data → prepare the model's inputs → build the model
    → fit → test → refit → write.

    Under multi-process training every process calls this; global rank 0 alone writes the run
    files and tests (see the module docstring); the other ranks return ``None`` after ``fit``.

    Args:
        cfg: The composed ``conf/train.yaml``.

    Returns:
        The value of ``cfg.optimized_metric`` (e.g. best ``val/ua``) for Hydra sweepers, or
        ``None`` when it was not logged (and on ranks other than 0).

    Raises:
        ValueError: bad settings, including a Hydra multirun with a DDP trainer that re-runs the
            script (see :func:`check_multirun_ddp`).
    """
    quiet_known_warnings()
    run = validate_and_start(cfg)
    dm = build_data(cfg, run)
    inputs = prepare_inputs(cfg, run, dm)
    model = build_model(cfg, dm, inputs)
    try:
        fitted = fit(cfg, run, dm, model)
        if not run.trainer.is_global_zero:
            return None
        if run.every_clip:
            return _write_final(run.trainer, model, dm, run.out_dir, run.start, inputs.extraction, inputs.weights,
                                inputs.n_params)
        tested = test(cfg, run, dm, model, fitted)
        tested = refit(cfg, run, dm, model, fitted, inputs, tested)
        metrics = write_results(cfg, run, dm, model, inputs, fitted, tested)
    finally:
        finish_wandb()
    return _optimized_value(cfg, metrics, fitted, tested)
