"""``eval.py``: evaluate a checkpoint (or an ensemble of checkpoints) on a split, a corpus or a
manifest, and write ``metrics.json`` plus a ``report.md`` with its tables and figures, and ``predictions.csv``
(one row per clip: path, true and predicted label, the probability of every class; :func:`write_clip_predictions`).

Which data:

* No ``data=`` group: the datamodule is rebuilt from the settings stored in the (first)
  checkpoint (label set, corpora, preprocessing, split seed and fold), so ``split=test`` is
  exactly the training run's test split; ``data.*`` overrides (``data.root``, ``data.cache_dir``,
  ...) are applied on top.
* ``data=<group>`` (``data=cremad``, ``data=manifest data.corpora=[m.csv]``): cross-corpus
  evaluation. The corpus side (corpora, speakers, split settings, loader) comes from the
  request; the audio settings (sample rate, duration, normalisation, ...) and the label set
  always stay the checkpoint's. Corpus labels reach the model's classes through the shared
  vocabulary (:mod:`ser_lightning.data.labels`): clips whose emotion the model cannot output
  are counted per emotion as *unscorable* (``metrics.json``, ``report.md``, ``unscorable.csv``),
  and model classes the data lacks are shown with support 0.
* ``split=all`` scores every clip of the corpus (no train/val/test assignment).
* A checkpoint trained with ``data.speaker_norm=true`` is evaluated the same way: its embeddings
  (frozen-feature cache) are standardised per speaker of the evaluated data, each speaker with
  statistics from all of that speaker's clips (:mod:`ser_lightning.data.speaker_norm`);
  ``metrics.json["protocol"]`` says so.
* A checkpoint trained with ``model.norm_stats=per_corpus`` standardises the clips of each corpus
  it was trained on with the stored statistics (of that corpus's training clips) and those of any
  other corpus with statistics computed from its evaluated clips (``norm_stats.json``;
  :func:`~ser_lightning.modules.norm_stats.use_eval_norm_stats`).

Output views (:mod:`ser_lightning.evaluation.views`; ``metrics.json["views"]``, ``views.csv``, the report's
"Output views" table): the full output and the output restricted to the classes present in the evaluated
data (or to ``labels=[...]``: probabilities renormalised over them, the arg-max re-taken), each scored as its
own named row; ``ua_restricted``, ``wa_restricted`` and ``macro_f1_restricted`` are the plain restricted
scores. Adaptation without labels (:mod:`ser_lightning.inference.adaptation`), always in rows of its own
named *transductive*: ``adapt=set`` standardises the head's input with the statistics of the evaluated
clips (``adapt=speaker``: of each speaker's clips; fewer than ``adapt_min_clips`` keep the training
statistics); it needs an encoder model with per-layer pooling and takes the frozen-feature path (its
cache), so the plain rows are then scored from the cache too. ``adapt_prior=em`` adds prior-corrected rows
(EM over the evaluated clips' unlabelled posteriors, from the checkpoint's training prior:
:func:`~ser_lightning.inference.adaptation.training_prior`).

``calibrate=true`` fits a temperature on the validation split of the checkpoint's own data
(:func:`~ser_lightning.evaluation.calibration.fit_temperature`) and reports the ECE before/after on the
evaluated split.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ser_lightning.cli.common import (
    build_trainer,
    quiet_known_warnings,
    single_device_overrides,
)
from ser_lightning.data.datamodule import AUDIO_KEYS, SERDataModule
from ser_lightning.data.splits import SPLITS
from ser_lightning.evaluation.calibration import (
    ECE_BINS,
    confidence_summary,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
)
from ser_lightning.evaluation.report import (
    classification_report,
    collect_metrics,
    top_confused_pairs,
    write_metrics,
    write_report,
    write_table_csv,
)
from ser_lightning.evaluation.unscorable import predict_unscorable, prediction_counts
from ser_lightning.evaluation.views import output_views, present_classes
from ser_lightning.inference.adaptation import (
    PLAIN,
    adaptable,
    adaptation_name,
    adapted_logits,
    check_adapt,
    label_subset,
    small_groups_note,
    training_prior,
)
from ser_lightning.inference.checkpoint import (
    load_classifier,
    read_checkpoint,
    stored_datamodule_hparams,
)
from ser_lightning.inference.default_model import resolve_model_path
from ser_lightning.modules.classifier import SERClassifier
from ser_lightning.modules.frozen_features import (
    frozen_feature_path,
    speaker_norm_inputs,
    use_frozen_features,
)
from ser_lightning.modules.norm_stats import use_eval_norm_stats

log = logging.getLogger(__name__)

#: Datamodule settings that belong to the model: always the checkpoint's.
MODEL_KEYS = (*AUDIO_KEYS, "cache_dtype", "label_set", "calm", "speaker_norm", "train_crop_s", "test_crops")
#: Keys of a ``data=`` group that are not corpus settings.
_NOT_CORPUS_KEYS = ("_target_", "test_split")
EVAL_SPLITS = (*SPLITS, "all")


def _explicit_data_keys() -> set[str]:
    """``data.<key>`` settings typed on the command line (empty outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    keys = set()
    for o in HydraConfig.get().overrides.task:
        key = o.split("=", 1)[0].lstrip("+~")
        if key.startswith("data.") and len(key) > 5:
            keys.add(key.split(".")[1])
    return keys


def eval_data_settings(stored: dict[str, Any], request: dict[str, Any],
                       explicit: set[str] | frozenset[str] = frozenset()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Datamodule settings for evaluation: the request's corpus side on the checkpoint's model side.

    Args:
        stored: ``datamodule_hyper_parameters`` of the checkpoint.
        request: The composed ``data`` node of ``conf/eval.yaml`` (overrides, or a whole
            ``data=<group>``).
        explicit: ``data.*`` keys typed on the command line.

    Returns:
        ``(settings, ignored)``: keyword arguments for :class:`SERDataModule` (without
        ``test_split``/``run_dir``) and the request's model-side values that differ from the
        checkpoint's and were therefore not used.

    Raises:
        ValueError: an explicitly requested audio or label setting that differs from the
            checkpoint's (the model only works with its own).
    """
    defaults = {"speaker_norm": False, "train_crop_s": None, "test_crops": 1}  # checkpoints from before the settings existed
    for k in sorted(explicit & set(MODEL_KEYS)):
        if request.get(k) != stored.get(k, defaults.get(k)):
            raise ValueError(
                f"data.{k}={request.get(k)!r}: eval.py keeps the checkpoint's {k}={stored.get(k)!r} (audio settings, "
                "label set, speaker_norm and crops belong to the model; other corpora's labels are mapped onto its classes through the "
                "shared vocabulary)")
    settings, ignored = dict(stored), {}
    for k, v in request.items():
        if k in _NOT_CORPUS_KEYS:
            continue
        if k in MODEL_KEYS:
            if v != stored.get(k, defaults.get(k)):
                ignored[k] = v
            continue
        settings[k] = v
    return settings, ignored


def adaptation_request(node: Any) -> dict[str, Any]:
    """``labels``, ``adapt``, ``adapt_prior`` and ``adapt_min_clips`` from a config node (validated).

    Args:
        node: ``conf/eval.yaml``'s top level or ``cross_corpus.yaml``'s ``cross`` node (a mapping).

    Returns:
        ``{"labels": list or None, "adapt", "prior", "min_clips"}``.

    Raises:
        ValueError: a setting outside its choices (:func:`~ser_lightning.inference.adaptation.check_adapt`).
    """
    get = node.get
    labels = get("labels")
    if OmegaConf.is_config(labels):
        labels = OmegaConf.to_container(labels, resolve=True)
    adapt, prior, min_clips = check_adapt(get("adapt"), get("adapt_prior"), get("adapt_min_clips", 20))
    return {"labels": labels, "adapt": adapt, "prior": prior, "min_clips": min_clips}


def prepare_adaptation(model: SERClassifier, dm: SERDataModule, adapt: str, accelerator: str = "cpu") -> None:
    """Put a feature-adapted evaluation on the frozen-feature path (before ``trainer.test``).

    Args:
        model: The loaded classifier. dm: Its data module, after ``setup``.
        adapt: ``none`` (nothing happens), ``set`` or ``speaker``.
        accelerator: Lightning accelerator for an frozen-feature extraction.

    Raises:
        ValueError: the model cannot be adapted (no pooled encoder states with an input standardisation,
            not cacheable, trained with ``data.speaker_norm=true`` or evaluated on ``data.test_crops`` windows).
    """
    if adapt == "none":
        return
    why = adaptable(model.network)
    if why is None and dm.hparams.get("speaker_norm"):
        why = "it was trained with data.speaker_norm=true (already standardised per speaker)"
    if why is None and dm.crop_window_counts()["test"] is not None:
        why = "it is evaluated on data.test_crops windows; adaptation standardises whole-clip embeddings"
    if why is None:
        cached, how = frozen_feature_path(model.network, dm, dict(model.hparams["model"]))
        why = None if cached else f"it takes the {how}"
    if why is not None:
        raise ValueError(f"adapt={adapt} needs a frozen encoder model with per-layer pooling and pooled_norm "
                         f"(e.g. model=whisper_tiny); this model cannot: {why}")
    use_frozen_features(model.network, dm, dict(model.hparams["model"]), accelerator=accelerator, progress=False)


def model_training_prior(model: SERClassifier, datamodule_hparams: dict[str, Any]) -> np.ndarray:
    """The class prior the checkpoint's posteriors are calibrated to
    (:func:`~ser_lightning.inference.adaptation.training_prior` of its class counts, ``loss.class_weights``,
    ``data.sampler`` and ``data.corpus_weights`` with the per-corpus class counts ``corpus_class_counts``).

    Raises:
        ValueError: the checkpoint stores no usable class counts (e.g. an ensemble).
    """
    hp = model.hparams
    return training_prior(hp.get("class_counts"), hp.get("class_weights"), datamodule_hparams.get("sampler"),
                          len(model.class_names), datamodule_hparams.get("corpus_weights"),
                          hp.get("corpus_class_counts"))


def split_speakers(dm: SERDataModule, split: str) -> list[str]:
    """``corpus/speaker`` of every clip of a split, in the split's order."""
    return [f"{u.corpus}/{u.speaker}" for u in dm.split_utterances(split)]


def scored_views(model: SERClassifier, dm: SERDataModule, split: str, logits: torch.Tensor, targets: torch.Tensor,
                 request: dict[str, Any], datamodule_hparams: dict[str, Any], restricted_name: str,
                 source: Any = "") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every output view of an evaluated split (:func:`~ser_lightning.evaluation.views.output_views`).

    Args:
        model: The classifier (after :func:`prepare_adaptation` when adapting).
        dm: Its data module. split: The evaluated split.
        logits: ``trainer.test`` logits ``(n, n_classes)`` in the split's order. targets: ``(n,)``.
        request: :func:`adaptation_request`.
        datamodule_hparams: The checkpoint's stored data settings (``data.sampler`` for the prior).
        restricted_name: The restricted rows' name when ``labels`` is not given.
        source: The model, named in messages.

    Returns:
        ``(views, info)``: the rows, and ``{"labels", "restricted_classes", "adapt", "adapt_prior",
        "adapt_min_clips", "feature_statistics", "training_prior", "notes"}``.

    Raises:
        ValueError: a requested label the model does not have; ``adapt_prior=em`` without training counts.
    """
    labels = list(model.class_names)
    t = targets.cpu().numpy().astype(np.int64)
    probs = {PLAIN: logits.float().softmax(dim=1).cpu().numpy()}
    info: dict[str, Any] = {"labels": request["labels"], "adapt": request["adapt"], "adapt_prior": request["prior"],
                            "adapt_min_clips": request["min_clips"], "notes": []}
    if request["adapt"] != "none":
        ds = dm.datasets[split]
        if not ds.frozen_features or not np.array_equal(ds.labels, t):
            raise RuntimeError(f"adapt: the {split} split's cached frozen features do not line up with the tested clips")
        pooled = np.load(ds.waves_path, mmap_mode="r")[ds.rows]
        groups = split_speakers(dm, split) if request["adapt"] == "speaker" else None
        model.network.eval()
        adapted, table = adapted_logits(model.network, pooled, groups, request["min_clips"])
        probs[adaptation_name(request["adapt"])] = torch.from_numpy(adapted).softmax(dim=1).numpy()
        info["feature_statistics"] = [vars(row) for row in table]
        note = small_groups_note(table, request["min_clips"])
        if note:
            log.warning("%s", note)
            info["notes"].append(note)
    if request["labels"] is not None:
        keep = label_subset(request["labels"], labels, source)
        name = f"restricted to labels={[labels[i] for i in keep]}"
    else:
        keep, name = present_classes(t, len(labels)), restricted_name
    info["restricted_classes"] = [labels[i] for i in keep]
    prior = None
    if request["prior"] == "em":
        prior = model_training_prior(model, datamodule_hparams)
        info["training_prior"] = dict(zip(labels, prior.tolist()))
    views = output_views(probs, t, labels, keep, name, prior=request["prior"], train_prior=prior,
                         min_clips=request["min_clips"])
    info["notes"] += sorted({v["note"] for v in views if v.get("note")})
    return views, info


def restricted_headline(views: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``ua_restricted``, ``wa_restricted``, ``macro_f1_restricted``, ``n_restricted`` of the plain restricted view."""
    row = next((v for v in views if v["output"] == "restricted" and v["adaptation"] == PLAIN), None)
    if row is None:
        return {}
    return {"ua_restricted": row["ua"], "wa_restricted": row["wa"], "macro_f1_restricted": row["macro_f1"],
            "n_restricted": row["n"], "restricted_classes": row["classes"]}


def _home_settings(stored: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's own data (for validation-split fits), found where the request looks."""
    return {**stored, **{k: settings[k] for k in ("root", "cache_dir", "batch_size", "num_workers") if k in settings}}


def _fit_ensemble_weights(model: SERClassifier, dm: SERDataModule) -> list[float]:
    """Fit learned ensemble weights on the validation split."""
    probs, targets = [], []
    for batch in dm.val_dataloader():
        wave, target = batch[0], batch[1]
        lengths = getattr(batch, "lengths", None)  # whole-clip batches carry each clip's length
        probs.append(model.network.member_probs(wave, lengths))
        targets.append(target)
    weights = model.network.fit_weights(torch.cat(probs, dim=1), torch.cat(targets))
    log.info("ensemble weights fitted on validation: %s", [round(w, 3) for w in weights])
    return weights


def _unscorable(dm: SERDataModule, split: str) -> tuple[dict[str, Any], list]:
    """Clips of the evaluated split whose emotion the model's label set cannot output."""
    dropped = dm.dropped
    if split == "all":
        scope = "the corpus"
    elif dm.hparams.split in ("speaker", "kfold"):
        speakers = {u.speaker for u, a in zip(dm.utterances, dm.assignment) if a == split}
        dropped = [u for u in dropped if u.speaker in speakers]
        scope = f"the {split} split's speakers"
    else:
        scope = "the whole corpus (data.split=random assigns no split to them)"
    per = Counter(u.emotion for u in dropped)
    return {"n": len(dropped), "per_emotion": dict(sorted(per.items())), "scope": scope}, dropped


def _test_outputs(trainer, model: SERClassifier, dm: SERDataModule) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``trainer.test`` and return (logged metrics, ``model.test_results``)."""
    logged = trainer.test(model, datamodule=dm, verbose=False)
    return logged[0], dict(model.test_results)


def write_clip_predictions(path: Path, dm: SERDataModule, split: str, probs: torch.Tensor,
                           targets: torch.Tensor) -> Path | None:
    """Write ``predictions.csv``: one row per evaluated clip, in the split's order.

    Columns: ``path``, ``corpus``, ``speaker``, ``emotion`` (the corpus's own label), ``true_label`` and
    ``predicted_label`` (the model's classes), ``correct`` (1/0), ``confidence`` (the predicted class's
    probability) and ``p_<class>`` for every class (the full output, as scored in ``metrics.json``'s headline).

    Args:
        path: The CSV file.
        dm: The set-up datamodule (its clips of ``split`` in loader order).
        split: The evaluated split.
        probs: ``(n_clips, n_classes)`` probabilities. targets: ``(n_clips,)`` class indices.

    Returns:
        The path, or ``None`` (with a warning) when the tested rows do not line up with the split's clips.
    """
    clips = dm.split_utterances(split)
    if len(clips) != len(probs):
        log.warning("predictions.csv not written: %d tested rows for %d clips of split %s", len(probs), len(clips), split)
        return None
    names = list(dm.class_names)
    p = probs.detach().float().cpu().numpy()
    pred, true = p.argmax(axis=1), targets.detach().cpu().numpy()
    rows = [[u.path, u.corpus, u.speaker, u.emotion, names[int(t)], names[int(k)], int(k == t), f"{row[k]:.6g}",
             *(f"{v:.6g}" for v in row)] for u, t, k, row in zip(clips, true, pred, p)]
    return write_table_csv(path, ["path", "corpus", "speaker", "emotion", "true_label", "predicted_label", "correct",
                                  "confidence", *(f"p_{c}" for c in names)], rows)


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` (or ``model=ensemble`` with ``model.members``) on ``cfg.split``.

    A multi-process trainer (``trainer=ddp``, ``trainer=ddp_sim``) is replaced by one on its first
    device, so that no clip is counted twice.

    Args:
        cfg: The composed ``conf/eval.yaml`` (``ckpt_path``, ``split``, ``calibrate``, ``data``
            overrides or group, optional ``model`` = the ensemble settings).

    Returns:
        The metrics written to ``metrics.json`` (also summarised in ``report.md``).

    Raises:
        FileNotFoundError: a checkpoint does not exist.
        ValueError: no checkpoint given, an unknown split, a checkpoint without datamodule
            settings, a requested audio setting or label set other than the checkpoint's, labels
            that differ from the data's, or ensemble members trained on different audio settings.
    """
    quiet_known_warnings()
    out_dir = Path(cfg.paths.output_dir)
    split = cfg.split
    if split not in EVAL_SPLITS:
        raise ValueError(f"split={split!r} is not one of {list(EVAL_SPLITS)}")
    adapt_request = adaptation_request(cfg)
    request = OmegaConf.to_container(cfg.get("data") or {}, resolve=True)
    ensemble = cfg.get("model") is not None and cfg.model.get("name") == "ensemble"
    if ensemble:
        members = [Path(m).expanduser() for m in cfg.model.members]
        if not members:
            raise ValueError("model=ensemble needs model.members=[ckpt1,ckpt2,...]")
        stored = [stored_datamodule_hparams(m) for m in members]
        for m, hp in zip(members[1:], stored[1:]):
            diff = [k for k in AUDIO_KEYS if hp.get(k) != stored[0].get(k)]
            if diff:
                raise ValueError(f"model.members: {m} was trained with other audio settings ({diff}) than {members[0]}")
        normed = [str(m) for m, hp in zip(members, stored) if hp.get("speaker_norm")]
        if normed:
            raise ValueError(f"model.members: {normed} were trained with data.speaker_norm=true; ensembles take "
                             "waveforms and cannot standardise a member's embeddings per speaker")
        dm_hp, source = stored[0], members[0]
    else:
        if not cfg.get("ckpt_path"):
            raise ValueError("ckpt_path is required (a checkpoint, `default` for the shipped model, or "
                             "model=ensemble model.members=[...])")
        source = resolve_model_path(cfg.ckpt_path)
        checkpoint = read_checkpoint(source)  # read once: its data settings here, the classifier below
        dm_hp = stored_datamodule_hparams(source, checkpoint)
    settings, ignored = eval_data_settings(dm_hp, request, _explicit_data_keys())
    if ignored:
        log.info("data group settings not used (the checkpoint's are kept): %s", ignored)
    dm = SERDataModule(**{**settings, "test_split": split, "run_dir": str(out_dir)})
    if ensemble:
        model = SERClassifier(model=OmegaConf.to_container(cfg.model, resolve=True),
                              features={"name": "raw", "sample_rate": dm.audio_cfg.sample_rate},
                              class_names=dm.class_names)
    else:
        model = load_classifier(source, map_location="cpu", checkpoint=checkpoint)
    if list(model.class_names) != dm.class_names:
        raise ValueError(f"{source}: model labels {model.class_names} differ from data labels {dm.class_names} "
                         f"(data.label_set={dm.label_set.name})")
    dm.setup("test")  # its batch path uses the model's frontend once the trainer runs the model
    norm_sources = use_eval_norm_stats(model, dm, out_dir)
    calibrate = bool(cfg.get("calibrate", False))
    home = None
    if calibrate or (ensemble and cfg.model.combine == "learned"):
        home = SERDataModule(**{**_home_settings(dm_hp, settings), "test_split": "val", "progress": False})
        home.setup("validate")
        use_eval_norm_stats(model, home)
    extra: dict = {}
    if ensemble:
        if cfg.model.combine == "learned":
            _fit_ensemble_weights(model, home)
        extra = {"members": [str(m.resolve()) for m in members], "member_weights": model.network.member_weights(),
                 "combine": cfg.model.combine}
    trainer = build_trainer(cfg)
    if trainer.world_size > 1:
        # DistributedSampler would pad the split by repeating clips; one device counts each once.
        log.info("eval.py runs on one device, not the %d processes of trainer.strategy=%s: every clip counts once",
                 trainer.world_size, cfg.trainer.get("strategy", "auto"))
        trainer = build_trainer(cfg, **single_device_overrides(trainer))
    accelerator = "gpu" if trainer.strategy.root_device.type == "cuda" else "cpu"
    for data in (dm, home):  # data.speaker_norm=true checkpoints: standardised embeddings, as in training
        if data is not None:
            speaker_norm_inputs(model, data, accelerator=accelerator)
    if ensemble and (adapt_request["adapt"] != "none" or adapt_request["prior"] != "none"):
        raise ValueError("adapt and adapt_prior take one checkpoint (its feature statistics and training prior); "
                         "model=ensemble takes labels=[...] only")
    if adapt_request["labels"] is not None:
        label_subset(adapt_request["labels"], model.class_names, source)  # a class the model lacks: refused before testing
    if adapt_request["prior"] == "em":
        model_training_prior(model, dm_hp)  # no usable training prior: refused before testing
    prepare_adaptation(model, dm, adapt_request["adapt"], accelerator)
    logged, results = _test_outputs(trainer, model, dm)
    metrics = collect_metrics(logged, results, split)
    logits, targets = results["logits"], results["targets"]
    probs = logits.softmax(dim=1)
    metrics.update(classification_report(probs, targets, dm.class_names))
    write_clip_predictions(out_dir / "predictions.csv", dm, split, probs, targets)
    metrics["views"], metrics["adaptation"] = scored_views(
        model, dm, split, logits, targets, adapt_request, dm_hp, "restricted to the evaluated data's classes", source)
    metrics.update(restricted_headline(metrics["views"]))
    metrics["top_confused"] = top_confused_pairs(metrics["confusion_matrix"], dm.class_names, k=int(cfg.get("top_k", 5)))
    metrics["confidence"] = {**confidence_summary(probs, targets, ECE_BINS),
                             "reliability": reliability_bins(probs, targets, ECE_BINS)}
    if calibrate:
        _, val = _test_outputs(trainer, model, home)
        temperature = fit_temperature(val["logits"], val["targets"])
        scaled = (logits / temperature).softmax(dim=1)
        metrics["calibration"] = {
            "temperature": temperature, "fitted_on": "the validation split of the checkpoint's data",
            "n_fit": len(val["targets"]), "ece_bins": ECE_BINS,
            "ece_before": metrics["confidence"]["ece"], "ece_after": expected_calibration_error(scaled, targets, ECE_BINS),
            "nll_before": nll(logits, targets), "nll_after": nll(logits, targets, temperature),
            "reliability_after": reliability_bins(scaled, targets, ECE_BINS),
        }
        log.info("temperature %.3f: ECE %.4f -> %.4f on %s", temperature, metrics["calibration"]["ece_before"],
                 metrics["calibration"]["ece_after"], split)
    metrics["unscorable"], dropped = _unscorable(dm, split)
    if dm.hparams.get("speaker_norm"):
        predicted = [None] * len(dropped)
        if dm.unscorable_rows:
            log.warning("data.speaker_norm=true: the %d unscorable clips are not predicted (they have no cached, "
                        "speaker-standardised embedding)", len(dm.unscorable_rows))
    else:
        predicted = predict_unscorable(model, dm, dropped)  # data.unknown_labels=unscorable: what the model calls them
    if any(p is not None for p in predicted):
        metrics["unscorable"]["predicted"] = prediction_counts(dropped, predicted)
    write_table_csv(out_dir / "unscorable.csv", ["path", "corpus", "speaker", "emotion", "predicted"],
                    [[u.path, u.corpus, u.speaker, u.emotion, p or ""] for u, p in zip(dropped, predicted)])
    if dropped:
        log.warning("%d clip(s) of %s have an emotion the model cannot output (%s): not scored, listed in "
                    "unscorable.csv", len(dropped), metrics["unscorable"]["scope"], metrics["unscorable"]["per_emotion"])
    metrics["data"] = {"corpora": list(settings.get("corpora", [])), "label_set": dm.label_set.name,
                       "calm": settings.get("calm"), "split_mode": settings.get("split"), "fold": settings.get("fold")}
    metrics["norm_stats"] = norm_sources or "fixed"
    metrics.update(checkpoint=str(source.resolve()), run_dir=str(out_dir), protocol=dm.protocol, **extra)
    write_metrics(metrics, out_dir)
    write_report(metrics, out_dir)
    log.info("%s UA %.4f  WA %.4f  macro-F1 %.4f  ECE %.4f, protocol %s (report: %s)", split, metrics["ua"],
             metrics["wa"], metrics["macro_f1"], metrics["confidence"]["ece"], dm.protocol, out_dir / "report.md")
    for v in metrics["views"]:
        log.info("  %s, %s: n %d  UA %s", v["output_name"], v["adaptation"], v["n"],
                 "n/a" if v["ua"] is None else f"{v['ua']:.4f}")
    return metrics


if __name__ == "__main__":  # python -m ser_lightning.cli.eval = ser-eval
    from ser_lightning.cli.main import run

    run("eval")
