"""Check a composed training config before any audio is decoded.

:func:`validate_config` builds every cheap piece of a run from the config alone — the
``SERDataModule`` (whose constructor checks the audio, label-set, loader and augmentation
settings without reading a file), the corpus names, the split settings, the optimiser settings,
the frontend and the network (from the registry, with the label set's class count) — and pushes one all-zero clip through the
frontend, SpecAugment and the network
(:meth:`SERDataModule.on_after_batch_transfer`, the batch path training uses). It reads no audio file, scans no corpus directory and
creates no cache, so a wrong setting fails in seconds, not after the corpus has been decoded.
Every error is a one-line ``ValueError`` naming the setting, e.g.::

    data.duration_s=-1.0 must be positive (seconds)
    augment.wave.noise_snr_db=[30.0, 15.0] is reversed: lower bound must not exceed upper bound
    features.n_mels=600 is larger than the n_fft // 2 + 1 = 513 frequency bins of features.n_fft=1024; ...
    model.input_size=[32, 32] is smaller than inception_v3's minimum 75×75 ...
    data.nope is not a setting of data (SERDataModule); valid settings: [...]

Unknown config *groups* (``model=nope``, ``data=nope``, ``features=nope``) never get here:
Hydra stops first with ``Could not find 'model/nope'`` and lists the available options.

Not checked here (they need the corpus on disk): whether the corpus directory exists (checked by
the scan before decoding) and whether it has enough speakers for ``data.val_speakers`` /
``data.test_speakers`` / ``data.n_folds`` (checked when the split is drawn).
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from omegaconf import DictConfig, OmegaConf

from ser_lightning.cli.common import build_classifier, plain_settings
from ser_lightning.features.augment import build_spec_augment, build_wave_augment

log = logging.getLogger(__name__)

#: The data module whose settings are checked (a config with another ``data._target_`` is not).
DATAMODULE_TARGET = "ser_lightning.data.datamodule.SERDataModule"



def check_keys(fn: Callable[..., Any], settings: dict[str, Any], group: str, owner: str,
               ignore: Iterable[str] = ()) -> None:
    """Check that every key of ``settings`` is a keyword argument of ``fn``.

    Args:
        fn: The function or class the settings are passed to.
        settings: The config node's keys and values.
        group: Config path named in the message (``data``, ``augment.wave``, ``model``...).
        owner: What takes the settings, named in the message.
        ignore: Parameters that are filled in by the code, not the config.

    Raises:
        ValueError: an unknown key; the message lists the valid ones. Nothing is checked when
            ``fn`` takes ``**kwargs``.
    """
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    valid = [n for n, p in params.items() if p.kind in kinds and n not in ("self", *ignore)]
    unknown = [k for k in settings if k not in valid and k not in ignore]
    if unknown:
        raise ValueError(f"{group}.{unknown[0]} is not a setting of {group} ({owner}); valid settings: {valid}")


def _check_data(data: dict[str, Any], augment: dict[str, Any]):
    """Build the ``SERDataModule`` (its constructor reads no file: it checks the audio, label-set,
    loader and augmentation settings) and check the settings it only uses once it scans and splits.

    Returns:
        The data module (its ``audio_cfg``, ``label_set``, ``wave_augment`` and ``spec_augment``).
    """
    from ser_lightning.data.cache import CACHE_DTYPES
    from ser_lightning.data.corpora import check_corpus_name
    from ser_lightning.data.datamodule import SERDataModule
    from ser_lightning.data.splits import SPLIT_MODES, check_corpus_split

    settings = {k: v for k, v in data.items() if k != "_target_"}
    check_keys(SERDataModule.__init__, settings, "data", "SERDataModule", ignore=("augment", "run_dir"))
    wave, spec = dict(augment.get("wave") or {}), dict(augment.get("spec") or {})
    check_keys(build_wave_augment, wave, "augment.wave", "build_wave_augment", ignore=("sample_rate",))
    check_keys(build_spec_augment, spec, "augment.spec", "build_spec_augment")
    unknown = [k for k in augment if k not in ("wave", "spec", "views")]
    if unknown:
        raise ValueError(f"augment.{unknown[0]} is not a setting of augment; valid settings: ['wave', 'spec', 'views']")
    views = dict(augment.get("views") or {})  # checked by the data module (ser_lightning.features.robust)
    dm = SERDataModule(**settings, augment={"wave": wave, "spec": spec, "views": views}, run_dir=None, progress=False)

    hp = dm.hparams
    corpora = [hp.corpora] if isinstance(hp.corpora, str) else list(hp.corpora or [])
    if not corpora:
        raise ValueError("data.corpora is empty: give at least one corpus name or .csv manifest path")
    for corpus in corpora:
        check_corpus_name(corpus)
    if hp.missing_corpora not in ("error", "skip"):
        raise ValueError(f"data.missing_corpora={hp.missing_corpora!r} is not one of ['error', 'skip']")
    if hp.cache_dtype not in CACHE_DTYPES:
        raise ValueError(f"data.cache_dtype={hp.cache_dtype!r} is not one of {list(CACHE_DTYPES)}")
    if hp.split not in SPLIT_MODES:
        raise ValueError(f"data.split={hp.split!r} is not one of {list(SPLIT_MODES)}")
    names = [check_corpus_name(c) for c in corpora]
    check_corpus_split(hp.split, names, hp.get("test_corpora"), hp.get("train_corpora"), hp.get("kfold_corpus"))
    groups = hp.get("speaker_folds")
    if hp.split == "kfold" and groups is not None:  # their shape was checked by the constructor
        if not isinstance(hp.fold, int) or isinstance(hp.fold, bool) or not 0 <= hp.fold < len(groups):
            raise ValueError(f"data.fold={hp.fold} must be an integer in 0..{len(groups) - 1} "
                             f"({len(groups)} groups in data.speaker_folds)")
    elif hp.split == "kfold":
        if not isinstance(hp.n_folds, int) or hp.n_folds < 2:
            raise ValueError(f"data.n_folds={hp.n_folds} must be an integer of at least 2")
        if not isinstance(hp.fold, int) or not 0 <= hp.fold < hp.n_folds:
            raise ValueError(f"data.fold={hp.fold} must be an integer in 0..{hp.n_folds - 1} (data.n_folds={hp.n_folds})")
    elif hp.split == "random":
        if not (0 < hp.val_frac < 1 and 0 < hp.test_frac < 1 and hp.val_frac + hp.test_frac < 1):
            raise ValueError(f"data.val_frac={hp.val_frac} and data.test_frac={hp.test_frac} must be in (0, 1) with a sum below 1")
    else:
        for key in ("val_speakers", "test_speakers"):
            if not isinstance(hp[key], int) or hp[key] < 1:
                raise ValueError(f"data.{key}={hp[key]} must be a positive number of speakers")
    return dm


def _check_network(cfg: DictConfig, audio, class_names: list[str]):
    """Check the model and features keys, build frontend + network with the label set's class
    count (:func:`~ser_lightning.models.build_network`, through ``SERClassifier``); returns the
    ``SERClassifier``."""
    from ser_lightning.features.frontend import FRONTENDS, frontend_class
    from ser_lightning.models import NON_NETWORK_KEYS, frontend_settings, model_info
    from ser_lightning.modules.optim import check_optim_config

    model, features = dict(plain_settings(cfg.model)), dict(plain_settings(cfg.get("features")))
    info = model_info(model.get("name"))
    check_keys(info.builder, {k: v for k, v in model.items() if k not in NON_NETWORK_KEYS},
               "model", info.name, ignore=("in_channels", "num_classes", "model_name"))
    if info.input_kind != "waveform":
        if features.get("name") in FRONTENDS:
            check_keys(frontend_class(features["name"]), {k: v for k, v in features.items() if k != "name"},
                       "features", features["name"])
        if features.get("sample_rate", audio.sample_rate) != audio.sample_rate:
            raise ValueError(f"features.sample_rate={features['sample_rate']} differs from data.sample_rate="
                             f"{audio.sample_rate}: the frontend would see audio at the wrong rate")
    frontend_settings(model, features, audio.num_samples)  # model.input agrees with the registered input kind
    check_optim_config(dict(plain_settings(cfg.get("optim"))))
    if model.get("norm_stats") == "per_corpus" and audio.clip_length != "whole":
        raise ValueError("model.norm_stats=per_corpus needs data.clip_length=whole (each clip's corpus statistics "
                         "travel with the whole-clip batches)")
    return build_classifier(cfg, class_names, audio.num_samples, class_counts=[1] * len(class_names))


def _check_speaker_norm(cfg: DictConfig, dm, module) -> None:
    """``data.speaker_norm=true`` needs the frozen-feature path (cached frozen features: pooled hidden states of a frozen encoder).

    Raises:
        ValueError: ``data.speaker_norm=true`` on a run that would feed waveforms (a network that is
            not an encoder model, ``model.feature_cache=off``, a trained encoder or pooling, or
            waveform augmentation); the message names the reason.
    """
    if not dm.hparams.get("speaker_norm"):
        return
    from ser_lightning.modules.frozen_features import frozen_feature_path

    cached, why = frozen_feature_path(module.network, dm, dict(plain_settings(cfg.model)))
    if not cached:
        raise ValueError(f"data.speaker_norm=true standardises the cached frozen features of a frozen encoder per speaker "
                         f"and needs the frozen-feature path, but model.name={cfg.model.name} takes the {why}; "
                         "set data.speaker_norm=false")


def _check_views(cfg: DictConfig, dm, module) -> None:
    """``data.train_views`` > 0 needs the frozen-feature path (augmented views embedded once and cached).

    Raises:
        ValueError: ``data.train_views`` > 0 on a run that would feed waveforms; the message names the reason.
    """
    if not dm.view_count():
        return
    from ser_lightning.modules.frozen_features import frozen_feature_path

    cached, why = frozen_feature_path(module.network, dm, dict(plain_settings(cfg.model)))
    if not cached:
        raise ValueError(f"data.train_views={dm.view_count()} embeds augmented views once with a frozen encoder and "
                         f"needs the frozen-feature path, but model.name={cfg.model.name} takes the {why}; set "
                         "data.train_views=0 (on-the-fly waveform augmentation: augment=default)")


#: ``trainer.strategy`` names (or ``_target_`` classes) that shard the parameters or the optimiser state.
SHARDING_STRATEGIES = ("fsdp", "deepspeed")


def _check_full_batch_optimiser(cfg: DictConfig) -> None:
    """Refuse the settings under which L-BFGS (``optim.name=lbfgs``) cannot fit, on one process or several.

    L-BFGS re-evaluates one objective in its line search; ``train.py`` makes that objective the same in
    every process of a multi-process run (:func:`~ser_lightning.cli.train.full_batch_overrides`), which
    works with the DDP strategies (``ddp``, ``ddp_spawn``, ``auto`` over several devices, torchrun, SLURM).

    Raises:
        ValueError: ``optim.name=lbfgs`` with a strategy that shards parameters or optimiser state
            (FSDP, DeepSpeed: each process's L-BFGS would compute its search direction from its own
            part of the parameters), or with ``trainer.accumulate_grad_batches`` above 1 (L-BFGS
            re-evaluates the last batch only, on top of the gradients the others left behind).
    """
    if (cfg.get("optim") or {}).get("name") != "lbfgs":
        return
    trainer = cfg.get("trainer") or {}
    strategy = trainer.get("strategy", "auto")
    name = str(strategy.get("_target_", "") if OmegaConf.is_dict(strategy) or isinstance(strategy, dict) else strategy)
    if any(s in name.lower() for s in SHARDING_STRATEGIES):
        raise ValueError(f"optim.name=lbfgs cannot train under trainer.strategy={name}: it shards the parameters, so "
                         "each process's L-BFGS would search along its own part of the direction and the processes' "
                         "line searches would fall out of step; use trainer.strategy=ddp (or a first-order optimiser, "
                         "e.g. optim=onecycle)")
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if isinstance(accumulate, int) and accumulate > 1:
        raise ValueError(f"optim.name=lbfgs cannot train with trainer.accumulate_grad_batches={accumulate}: its line "
                         "search re-evaluates the last batch only, on top of the gradients the other batches left; "
                         "set trainer.accumulate_grad_batches=1 (on the frozen-feature path the whole training set "
                         "is one batch)")


def validate_config(cfg: DictConfig) -> None:
    """Fail fast on a bad training config, before any data is read (see the module docstring).

    Builds the ``SERDataModule`` (audio settings, label set, augmentation chains; no file is
    read), checks the corpus names and split settings, builds the frontend and network, then
    runs one all-zero clip ``(1, num_samples)`` through frontend → SpecAugment → network in eval
    mode and checks the logits are ``(1, num_classes)``. The global random generators are
    restored afterwards, so calling it does not change a seeded run. A config whose
    ``data._target_`` is not ``SERDataModule`` is not checked.

    Args:
        cfg: The composed ``conf/train.yaml`` (``data``, ``augment``, ``features``, ``model``,
            ``optim``, ``loss``).

    Raises:
        ValueError: naming the first bad setting: an unknown key in ``data``, ``augment.*``,
            ``features`` or ``model`` (listing the valid ones); an unknown corpus, label set,
            model, frontend or split mode (listing the choices); an out-of-range number
            (negative ``data.duration_s``, reversed ``augment.wave.noise_snr_db``,
            ``features.n_mels`` above ``n_fft // 2 + 1``, ``model.input_size`` below a backbone's
            minimum, ...); a network that cannot process the configured clip length; or an
            optimiser that cannot train with the trainer's strategy (:func:`_check_full_batch_optimiser`).
    """
    optim = dict(plain_settings(cfg.get("optim")) or {})
    precision = str((cfg.get("trainer") or {}).get("precision", "auto"))
    if optim.get("name") == "lbfgs" and "mixed" in precision:
        raise ValueError(f"optim.name=lbfgs cannot train under trainer.precision={precision} (Lightning refuses "
                         "L-BFGS with mixed precision); set trainer.precision=32")
    if cfg.get("refit") and (cfg.get("data") or {}).get("split") == "all":
        raise ValueError("refit=true with data.split=all: every clip already trains for trainer.max_epochs; "
                         "set refit=false (choose the epochs with a cross-validation first)")
    _check_full_batch_optimiser(cfg)
    if cfg.get("refit") and not (cfg.get("callbacks") or {}).get("model_checkpoint"):
        raise ValueError("refit=true needs callbacks.model_checkpoint (the best checkpoint's epoch count sets the refit)")
    data = dict(plain_settings(cfg.data))
    if data.get("_target_") != DATAMODULE_TARGET:
        log.info("validate_config: data._target_=%s is not %s; settings not checked", data.get("_target_"),
                 DATAMODULE_TARGET)
        return
    states = _collect_rng_states(include_cuda=False)
    try:
        with warnings.catch_warnings():  # the real build, right after, warns once
            warnings.simplefilter("ignore")
            dm = _check_data(data, dict(plain_settings(cfg.get("augment"))))
            audio, label_set = dm.audio_cfg, dm.label_set
            module = _check_network(cfg, audio, list(label_set.classes))
            _check_speaker_norm(cfg, dm, module)
            _check_views(cfg, dm, module)
            dm.set_frontend(module.frontend)  # a dry run without a trainer: the frontend given
            n = label_set.num_classes
            clips, target = torch.zeros(2, audio.num_samples), torch.zeros(2, dtype=torch.long)
            shape = ""
            try:
                with torch.no_grad():
                    dm.wave_augment.train(), dm.spec_augment.train(), module.eval()
                    dm.on_after_batch_transfer((clips, target), training=True)  # augmentation → features → SpecAugment
                    feats, _ = dm.on_after_batch_transfer((clips[:1], target[:1]), training=False)
                    shape = f" (features {tuple(feats.shape)})"
                    logits = module.network(feats)
            except (RuntimeError, ValueError, IndexError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ValueError(
                    f"model.name={cfg.model.name} cannot process a data.duration_s={audio.duration_s} s clip at "
                    f"data.sample_rate={audio.sample_rate} Hz{shape}: {first}; "
                    "change model.*, features.* or data.duration_s"
                ) from None
            if tuple(logits.shape) != (1, n):
                raise ValueError(f"model.name={cfg.model.name} returned logits of shape {tuple(logits.shape)} for one clip; "
                                 f"expected (1, {n}) for data.label_set={label_set.name}")
    finally:
        _set_rng_states(states)
