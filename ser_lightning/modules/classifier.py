"""``SERClassifier``: feature frontend + network + loss + UA/WA/F1 metrics + optimiser.

All constructor arguments are plain scalars, lists and dicts so they log cleanly (CSV, W&B) and
``SERClassifier.load_from_checkpoint(path)`` rebuilds the model with no other input.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)

from ser_lightning.data.batches import FrozenFeatures
from ser_lightning.data.crops import CropGroups, average_crop_logits
from ser_lightning.models import build_network
from ser_lightning.models.facts import network_facts as facts_of
from ser_lightning.modules.frozen_encoder import restore_frozen_encoder
from ser_lightning.modules.mixup import check_mixup_alpha, mixup_batch, soft_cross_entropy
from ser_lightning.modules.norm_stats import checked_norm_stats_mode, pooled_stats
from ser_lightning.modules.optim import (
    build_optimizers,
    l2_penalty,
    same_objective_on_every_process,
)


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "ua": MulticlassAccuracy(num_classes, average="macro"),
            "wa": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
    )


def loss_class_weights(class_weights: str | list[float] | None, class_counts: list[int] | None,
                       n: int) -> torch.Tensor | None:
    """The cross-entropy's per-class weights (``loss.class_weights``).

    Args:
        class_weights: ``None``, ``"balanced"`` or one weight per class.
        class_counts: Training items per class (needed for ``"balanced"``).
        n: Number of classes.

    Returns:
        ``None`` (unweighted), or ``(n,)`` float32 weights; ``"balanced"`` gives ``N / (n · count_c)``, the
        inverse training frequency scaled so that the weighted counts sum to ``N`` (scikit-learn's
        ``class_weight="balanced"``).

    Raises:
        ValueError: ``"balanced"`` without a positive count per class, or a list of the wrong length.
    """
    if class_weights == "balanced":
        if not class_counts or len(class_counts) != n or min(class_counts) <= 0:
            raise ValueError(f"loss.class_weights=balanced needs a positive training count per class, got {class_counts}")
        counts = torch.tensor(class_counts, dtype=torch.float32)
        return counts.sum() / (n * counts)
    if class_weights is not None:
        if isinstance(class_weights, str) or len(class_weights) != n:
            raise ValueError(f"loss.class_weights={class_weights!r} must be null, 'balanced' or {n} numbers")
        return torch.tensor(list(class_weights), dtype=torch.float32)
    return None


class SERClassifier(pl.LightningModule):
    """Speech emotion classifier on fixed-length waveforms.

    ``forward`` maps waveforms to logits through the frontend, so evaluation, prediction and
    export compute the features the network was trained on. During ``fit``/``test`` the
    datamodule computes the features batched on the device with this same frontend (it asks the model
    its trainer runs; ``SERDataModule.on_after_batch_transfer``) and the steps receive ``(features, target)``.

    Batches from the data module are ``(features, target)``; for whole clips
    (``data.clip_length=whole``) the features are ``(waves, lengths)`` and the network is called
    with both (with per-corpus statistics, ``model.norm_stats=per_corpus``, also with each clip's
    corpus mean and sd ``(batch, 2)``); on the frozen-feature path they are
    :class:`~ser_lightning.data.batches.FrozenFeatures`, cached pooled encoder states that go to the network's
    ``forward_pooled`` (a frozen encoder's output, computed once per clip): the batch says which input it is,
    so the same model trains on either path and nothing is switched on it.

    Metrics: UA (unweighted accuracy = macro-averaged recall), WA (weighted accuracy = overall
    accuracy), macro-F1; on test also per-class recall and the confusion matrix.

    Args:
        model: Network settings: ``name`` (registered model) plus that network's settings.
        features: Frontend settings: ``name`` (``logmel``/``mfcc``) plus its settings.
        class_names: Class names in index order.
        optim: Optimiser/scheduler settings (see :func:`ser_lightning.modules.optim.build_optimizers`).
        label_smoothing: Cross-entropy label smoothing in [0, 1).
        mixup_alpha: Mixup's ``Beta(alpha, alpha)`` parameter (Zhang et al. 2018; ``loss.mixup_alpha``);
            0: off. Training batches are mixed with a permutation of themselves and scored against soft
            targets (:mod:`ser_lightning.modules.mixup`; class weights and label smoothing compose as in
            the plain loss): the spectrogram of the spectrogram networks, the frontend features of whole
            clips, or — on the frozen-feature path — the cached pooled encoder states, the head's input
            (manifold mixup, Verma et al. 2019). Train metrics score each mixed item against its
            dominant label. Not with ``optim.name=lbfgs`` (its line search re-evaluates one fixed objective).
        class_weights: ``None``, ``"balanced"`` (inverse training frequency; needs
            ``class_counts``) or one weight per class.
        class_counts: Training items per class (for ``"balanced"`` weights).
        num_samples: Clip length in samples. With a network that declares ``input_size: [H, W]``
            (timm backbones), the frontend's ``n_mels`` and ``hop_length`` are derived from it so
            the spectrogram is already ``H × W`` before the backbone's final small resize
            (report 003 §3.4.2, eq. 1–3).
        corpus_stats: With ``model.norm_stats=per_corpus``: the training corpora's log-mel
            statistics, corpus → ``{"mean", "sd", "frames", ...}`` (computed before the model is built:
            :func:`~ser_lightning.modules.norm_stats.training_norm_stats`; stored with the checkpoint's
            hyper-parameters); their pooled mean and sd become the encoder's default, used for
            clips that come without statistics (prediction on a user's file).
        corpus_class_counts: With ``data.corpus_weights=balanced``: training corpus → items per class, kept so
            that the model's training class prior can be derived
            (:func:`~ser_lightning.inference.adaptation.training_prior`, EM prior correction).
        network_facts: Ignored when given (a checkpoint's stored copy): the facts are those of the network built
            here (:class:`~ser_lightning.models.facts.NetworkFacts`), stored under this name in the hyper-parameters.
        built: ``(frontend, network)`` already built from these ``model``/``features`` settings with
            :func:`~ser_lightning.models.build_network` (the training task builds them first, to compute the
            corpus statistics and the frozen-feature cache the model is then built with); not stored: a
            reload builds them again from the settings. ``None``: built here.

    Raises:
        ValueError: bad loss settings (named in the message; mixup with L-BFGS), an unknown ``model.norm_stats``,
            or ``per_corpus`` for a network whose input takes no statistics.
    """

    def __init__(
        self,
        model: dict[str, Any],
        features: dict[str, Any],
        class_names: list[str],
        optim: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        class_weights: str | list[float] | None = None,
        class_counts: list[int] | None = None,
        num_samples: int | None = None,
        corpus_stats: dict[str, dict[str, float]] | None = None,
        corpus_class_counts: dict[str, list[int]] | None = None,
        network_facts: dict[str, Any] | None = None,
        built: tuple[torch.nn.Module, torch.nn.Module] | None = None,
    ) -> None:  # pragma: no mutate block (mutmut's wrapper would hide these arguments from save_hyperparameters)
        super().__init__()
        self.save_hyperparameters(ignore=["built"])
        n = len(class_names)
        self.class_names = list(class_names)
        self.backbone_lr_mult = float(model.get("backbone_lr_mult", 1.0))
        self.frontend, self.network = built or build_network(dict(model), dict(features), n, num_samples)
        self.facts = facts_of(self.network)
        self.hparams["network_facts"] = self.facts.as_dict()  # stored with the checkpoint (models/facts.py)
        checked_norm_stats_mode(model, self.network)
        if corpus_stats:
            self.set_corpus_stats(corpus_stats)
        if str(model.get("pretrained", "")).lower() == "auto" and hasattr(self.network, "pretrained"):
            # Record what auto resolved to, so a reload rebuilds the same architecture (e.g. TF pooling).
            self.hparams["model"]["pretrained"] = self.network.pretrained
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing={label_smoothing} must be in [0, 1)")
        self.mixup_alpha = check_mixup_alpha(mixup_alpha)
        if self.mixup_alpha > 0 and (optim or {}).get("name") == "lbfgs":
            raise ValueError(f"loss.mixup_alpha={mixup_alpha} cannot train with optim.name=lbfgs: L-BFGS re-evaluates one "
                             "fixed objective in its line search, and mixup draws a new batch each time; use a "
                             "first-order optimiser (e.g. optim=onecycle) or loss.mixup_alpha=0")
        self.register_buffer("class_weight", loss_class_weights(class_weights, class_counts, n), persistent=False)
        self.train_metrics = _metrics(n, "train/")
        self.val_metrics = _metrics(n, "val/")
        self.test_metrics = _metrics(n, "test/")
        self.test_recall = MulticlassRecall(n, average="none")
        self.test_confusion = MulticlassConfusionMatrix(n)
        self.test_results: dict[str, Any] = {}
        self._test_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------ corpus statistics
    def set_corpus_stats(self, table: dict[str, dict[str, float]]) -> None:
        """Store the training corpora's log-mel statistics (saved with the checkpoint) and make their
        pooled mean and sd the encoder's default standardisation.

        Args:
            table: Corpus → ``{"mean", "sd", "frames", ...}``
                (:func:`~ser_lightning.modules.norm_stats.compute_corpus_stats`).

        Raises:
            ValueError: the network takes no statistics.
        """
        if not self.facts.takes_norm_stats:
            raise ValueError(f"{type(self.network).__name__} takes no corpus statistics")
        table = {str(c): {k: (int(v) if k in ("frames", "clips") else float(v)) for k, v in s.items()}
                 for c, s in table.items()}
        self.hparams["corpus_stats"] = table
        pooled = pooled_stats(table)
        frontend = self.network.encoder.frontend
        frontend.norm_mean, frontend.norm_std = pooled["mean"], pooled["sd"]

    @property
    def corpus_stats(self) -> dict[str, dict[str, float]] | None:
        """The stored training corpora's statistics (``None`` with ``model.norm_stats=fixed``)."""
        return self.hparams.get("corpus_stats")

    @property
    def pooled_norm_stats(self) -> dict[str, float] | None:
        """The training corpora's frames pooled: the default for clips of no known corpus."""
        return pooled_stats(self.corpus_stats) if self.corpus_stats else None

    # ----------------------------------------------------------------------------- inference
    @torch.no_grad()
    def extract_features(self, wave: torch.Tensor) -> torch.Tensor:
        """Features ``(batch, channels, n_feats, frames)`` from waveforms ``(batch, time)``."""
        return self.frontend(wave)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None,
                norm: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` from waveforms ``(batch, time)`` at the training rate.

        ``lengths`` ``(batch,)`` (valid samples per clip) is passed to networks that read whole
        clips (the encoder models); others ignore it. ``norm`` ``(batch, 2)``: per-clip log-mel
        mean and sd (its corpus's) for a network that takes them; ``None``: the encoder's default
        (the training corpora's pooled statistics with ``model.norm_stats=per_corpus``).
        """
        if norm is not None:
            return self.network(self.frontend(wave), lengths, norm)
        if lengths is not None and self.facts.whole_clips:
            return self.network(self.frontend(wave), lengths)
        return self.network(self.frontend(wave))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Complete a head-only checkpoint (a frozen encoder's weights left out, their SHA-256 recorded) with
        this model's own encoder before Lightning loads the state dict strictly
        (:func:`ser_lightning.modules.frozen_encoder.restore_frozen_encoder`).

        Raises:
            ValueError: the installed encoder weights are not the recorded ones (``FrozenEncoderMismatch``),
                or the checkpoint is damaged.
        """
        restore_frozen_encoder(checkpoint, self)

    def use_cached_features(self, enabled: bool = True) -> None:
        """Deprecated, and no longer needed: a batch of cached frozen features says so itself
        (:class:`~ser_lightning.data.batches.FrozenFeatures`); this only checks that the network can take them.

        Raises:
            ValueError: the network cannot take cached frozen features.
        """
        warnings.warn("SERClassifier.use_cached_features is deprecated: frozen-feature batches are recognised by "
                      "their type (FrozenFeatures)", FutureWarning, stacklevel=2)
        if enabled:
            from ser_lightning.modules.frozen_features import check_cacheable

            check_cacheable(self.network)

    #: Deprecated name of :meth:`use_cached_features`.
    use_cached_embeddings = use_cached_features

    def _logits(self, feats) -> torch.Tensor:
        """Network output for the features of a batch (see the class docstring).

        For :class:`~ser_lightning.data.crops.CropGroups` (``data.test_crops`` windows per clip) the per-clip log
        of the windows' mean class probability ``(batch, num_classes)``
        (:func:`~ser_lightning.data.crops.average_crop_logits`).
        """
        if isinstance(feats, CropGroups):
            return average_crop_logits(self._logits(feats.inputs), feats.crops)
        if isinstance(feats, FrozenFeatures):  # the frozen-feature path: the head on cached pooled states
            return self.network.forward_pooled(feats.pooled)
        if isinstance(feats, (tuple, list)):
            return self.network(*feats)
        return self.network(feats)

    # ------------------------------------------------------------------------------ training
    def _loss(self, logits: torch.Tensor, target: torch.Tensor, item_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy with the class weights; with ``item_weight`` ``(batch,)`` (``data.corpus_weights``) each
        item's loss is weighted by its class weight times its own weight, normalised by their sum (the same
        normalisation as ``F.cross_entropy`` with class weights)."""
        if item_weight is None:
            return F.cross_entropy(logits.float(), target, weight=self.class_weight,
                                   label_smoothing=self.hparams.label_smoothing)
        per_item = F.cross_entropy(logits.float(), target, weight=self.class_weight, reduction="none",
                                   label_smoothing=self.hparams.label_smoothing)  # already times the class weight
        w = item_weight.float()
        norm = w * (self.class_weight[target] if self.class_weight is not None else 1.0)
        return (per_item * w).sum() / norm.sum()

    def _mixup(self, feats, target: torch.Tensor):
        """Mix a training batch (``mixup_alpha > 0``): ``(mixed features, soft targets (batch, num_classes),
        dominant label (batch,))``; see :mod:`ser_lightning.modules.mixup`.

        Whole-clip features ``(features, lengths)`` are mixed on the features; a mixed clip's length is
        the longer of its two clips' (the shorter one is zero-padded there).

        Raises:
            ValueError: whole clips with per-corpus statistics (``model.norm_stats=per_corpus``): a mixed
                clip would need two corpora's standardisations.
        """
        n = len(self.class_names)
        if isinstance(feats, FrozenFeatures):  # manifold mixup of the head's input
            mixed, soft, lam, perm = mixup_batch(feats.pooled, target, n, self.mixup_alpha)
            mixed_feats = FrozenFeatures(mixed)
        elif isinstance(feats, (tuple, list)):
            if len(feats) > 2:
                raise ValueError("loss.mixup_alpha>0 cannot mix whole clips that carry per-corpus statistics "
                                 "(model.norm_stats=per_corpus) on the waveform path; use model.norm_stats=fixed "
                                 "or the frozen-feature path")
            x, lengths = feats
            mixed, soft, lam, perm = mixup_batch(x, target, n, self.mixup_alpha)
            mixed_feats = (mixed, torch.maximum(lengths, lengths[perm]))
        else:
            mixed_feats, soft, lam, perm = mixup_batch(feats, target, n, self.mixup_alpha)
        dominant = target if lam >= 0.5 else target[perm]
        return mixed_feats, soft.to(target.device), dominant

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Cross-entropy on ``(features (batch, C, F, frames), target (batch,))`` (or ``(..., weight (batch,))``
        with ``data.corpus_weights``: :meth:`_loss`); logs train metrics.

        With ``loss.mixup_alpha > 0`` the batch is mixed first and scored against soft targets
        (:meth:`_mixup`). With ``optim.name=lbfgs`` the returned loss adds the L2 penalty
        (:func:`~ser_lightning.modules.optim.l2_penalty`); ``train/loss`` logs the cross-entropy alone. With
        L-BFGS on several processes the returned value is the processes' mean objective
        (:func:`~ser_lightning.modules.optim.same_objective_on_every_process`).
        """
        feats, target, *extra = batch
        item_weight = extra[0] if extra else None
        if self.mixup_alpha > 0:
            if item_weight is not None:
                raise ValueError("loss.mixup_alpha>0 does not take per-item weights (data.corpus_weights)")
            feats, soft, metric_target = self._mixup(feats, target)
            logits = self._logits(feats)
            loss = soft_cross_entropy(logits, soft, self.class_weight, self.hparams.label_smoothing)
        else:
            logits = self._logits(feats)
            loss = self._loss(logits, target, item_weight)
            metric_target = target
        self.train_metrics.update(logits.detach(), metric_target)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(target),
                 sync_dist=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, batch_size=len(target))
        penalty = l2_penalty(self, self.hparams.optim)
        objective = loss if penalty is None else loss + penalty
        trainer = self._trainer
        if (self.hparams.optim or {}).get("name") == "lbfgs" and trainer is not None and trainer.world_size > 1:
            objective = same_objective_on_every_process(objective, trainer.strategy)
        return objective

    def validation_step(self, batch, batch_idx: int) -> None:
        """Accumulate validation loss, UA, WA and macro-F1 (logged per epoch)."""
        feats, target = batch[:2]
        logits = self._logits(feats)
        self.val_metrics.update(logits, target)
        self.log("val/loss", self._loss(logits, target), on_epoch=True, prog_bar=True, batch_size=len(target),
                 sync_dist=True)
        self.log_dict(self.val_metrics, on_epoch=True, prog_bar=True, batch_size=len(target))

    def test_step(self, batch, batch_idx: int) -> None:
        """Accumulate test metrics, per-class recall and the confusion matrix."""
        feats, target = batch[:2]
        logits = self._logits(feats)
        self.test_metrics.update(logits, target)
        self.test_recall.update(logits, target)
        self.test_confusion.update(logits, target)
        self._test_outputs.append((logits.detach().float().cpu(), target.detach().cpu()))
        self.log("test/loss", self._loss(logits, target), on_epoch=True, batch_size=len(target), sync_dist=True)
        self.log_dict(self.test_metrics, on_epoch=True, batch_size=len(target))

    def on_test_epoch_start(self) -> None:
        """Reset the per-class recall and confusion matrix."""
        self.test_recall.reset()
        self.test_confusion.reset()
        self.test_results = {}
        self._test_outputs = []

    def on_test_epoch_end(self) -> None:
        """Store per-class recall, the confusion matrix and this process's per-clip ``logits``
        ``(n, num_classes)`` and ``targets`` ``(n,)`` (in loader order, for ``eval.py``'s
        calibration analysis) in :attr:`test_results`."""
        recall = self.test_recall.compute().tolist()
        logits, targets = zip(*self._test_outputs) if self._test_outputs else ((torch.zeros(0, len(self.class_names)),),
                                                                               (torch.zeros(0, dtype=torch.long),))
        self._test_outputs = []
        self.test_results = {
            "per_class_recall": dict(zip(self.class_names, recall)),
            "confusion_matrix": self.test_confusion.compute().tolist(),
            "labels": self.class_names,
            "logits": torch.cat(logits),
            "targets": torch.cat(targets),
        }

    def configure_optimizers(self):
        """Optimiser and scheduler from ``optim`` (Adam/AdamW; one-cycle, cosine or none)."""
        return build_optimizers(self, self.hparams.optim or {}, backbone_lr_mult=self.backbone_lr_mult)
