"""``SERDataModule``: corpora → label set → decode-once cache → speaker split → batches.

Batches leave the dataloaders as fixed-length waveforms ``(batch, time)``. After they reach the
device, :meth:`SERDataModule.on_after_batch_transfer` runs — batched, on the device — the
training waveform augmentation (speed, time shift with wrap-around, gain, white noise at an SNR),
the feature frontend of the model it serves (the ``SERClassifier`` of the trainer it is attached to, so
every stage computes identical features; ``frontend=`` for use without a trainer) and, for training,
SpecAugment. Validation and test
batches are never augmented. With per-corpus standardisation statistics
(:meth:`SERDataModule.set_norm_stats`, ``model.norm_stats=per_corpus``) whole-clip batches also
carry each clip's corpus mean and sd, which reach the encoder with the waveforms.
"""
from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ser_lightning.data.audio import AUDIO_KEYS, AudioConfig, audio_config_from_hparams  # noqa: F401 (the last two re-exported)
from ser_lightning.data.batches import (  # noqa: F401 (re-exported: the batches' old home)
    CropBatch,
    FrozenFeatureBatch,
    FrozenFeatures,
    WaveBatch,
    WholeClipBatch,
    collate_batch,
)
from ser_lightning.data.cache import CachedWaves, build_or_load
from ser_lightning.data.crops import (
    CropGroups,
    check_crop_settings,
    even_windows,
)
from ser_lightning.data.datasets import (  # noqa: F401 (re-exported: the datasets' old home)
    SAMPLERS,
    BalancedClassSampler,
    CachedWaveDataset,
    _ViewDataset,
    _WindowDataset,
)
from ser_lightning.data.labels import VOCABULARY, class_counts, get_label_set
from ser_lightning.data.manifest import Utterance
from ser_lightning.data.scan import scan_corpora
from ser_lightning.data.speaker_norm import protocol_name, standardise_per_speaker
from ser_lightning.data.splits import SPLITS, assign_splits, check_speaker_folds
from ser_lightning.data.views import (
    build_views,
    check_view_settings,
    clip_identity,
)
from ser_lightning.features.augment import build_spec_augment, build_wave_augment

log = logging.getLogger(__name__)


def resolve_data_root(root: str | None) -> Path:
    """Data root: the setting, else ``$SER_DATA_DIR``, else ``./data`` (made absolute)."""
    return Path(root or os.environ.get("SER_DATA_DIR") or "data").expanduser().resolve()



#: Datamodule settings that define how a clip is decoded (``AudioConfig``); a checkpoint stores
#: them in ``datamodule_hyper_parameters``, and eval/predict/export reuse them from there.
#: ``data.unknown_labels`` choices (see :class:`SERDataModule`).
UNKNOWN_LABEL_POLICIES = ("error", "drop", "unscorable")


#: ``data.corpus_weights`` choices (``None``: every training item weighs 1).
CORPUS_WEIGHTS = (None, "balanced")


class SERDataModule(pl.LightningDataModule):
    """Speech emotion data for Lightning.

    Args:
        root: Data root holding the corpora (``null`` → ``$SER_DATA_DIR`` → ``./data``).
        corpora: Corpus names (see :data:`~ser_lightning.data.corpora.PARSERS`), ``emobox``, or
            manifest CSV paths.
        label_set: A name of :data:`~ser_lightning.data.labels.LABEL_SETS`, a list of vocabulary
            words, or ``emobox`` (the classes of the EmoBox corpus's label map; stored in the
            checkpoint as the explicit list).
        calm: ``neutral`` or ``drop``: what calm becomes in sets without a calm class.
        unknown_labels: What happens to a clip whose emotion is outside the vocabulary or the
            label set: ``error`` (stop, naming the file), ``drop`` (default: left out with a
            warning; ``unknown_labels.csv`` in the run directory counts them per label; eval.py
            reports them as unscorable) or ``unscorable`` (as ``drop``, and they are also decoded
            so that eval.py shows what the model predicts for them). Clips dropped by
            ``calm=drop`` are counted the same way but never an error.
        emobox: With ``emobox`` in ``corpora``: ``metadata_dir`` (checkout of EmoBox),
            ``corpus`` (EmoBox corpus name) and ``audio_root`` (folder holding EmoBox's
            ``downloads/``; default the data root); the fold is ``fold``.
        speakers: Optional subset of speaker ids to keep (debugging, quick tests).
        missing_corpora: ``error`` (default) or ``skip``: leave out, with a warning, listed
            corpora that are not under ``root`` (``data=combined`` uses ``skip``).
        sample_rate: Sample rate of the decoded clips, Hz.
        duration_s: Clip length in seconds.
        normalize: ``peak``/``rms``/``none``.
        trim_silence: Trim leading/trailing silence.
        pad_mode: ``zero``/``reflect``/``loop``.
        crop: ``center``/``start``.
        clip_length: ``fixed`` (every clip cropped/padded to ``duration_s``; the spectrogram
            networks) or ``whole`` (each clip keeps its own length up to ``duration_s``; batches
            are ``((waves, lengths), target)`` for the encoder networks, see
            :meth:`on_after_batch_transfer`).
        train_crop_s: With whole clips: each training clip is a window of this many seconds
            (:mod:`ser_lightning.data.crops`; a clip no longer than it is used whole): a new random window
            each epoch on the waveform path, ``train_crops`` fixed windows on the frozen-feature path;
            ``None`` (default): whole clips.
        test_crops: Validation and test clips scored by this many evenly spaced windows of
            ``train_crop_s`` seconds, their class probabilities averaged (1, default: the whole clip).
        train_crops: Windows embedded once per training clip on the frozen-feature path (each one a
            training item), when ``train_crop_s`` is set; 0: training clips stay whole on either path
            (``train_crop_s`` then only sets the length of the ``test_crops`` windows).
        train_views: Augmented views per training clip on the frozen-feature path
            (:mod:`ser_lightning.data.views`): each clip's K views, made by the ``augment.views`` chain, are
            embedded once and cached, and every training clip contributes its clean embedding and its K views'
            as training items (validation and test clips stay clean); 0 (default): off. Needs whole clips and
            the frozen-feature path (the training loader refuses to serve waveforms with it).
        cache_dir: Where decoded waveforms are cached.
        cache_dtype: ``float16``/``float32``.
        split: ``speaker``/``kfold``/``random``/``partition``/``session``/``corpus`` (see
            :mod:`ser_lightning.data.splits`).
        test_corpora: With ``split=corpus``: the test corpora. A corpus of ``corpora`` in neither list is
            decoded and embedded but unused, so every cell of a cross-corpus protocol shares one cache.
        train_corpora: With ``split=corpus``: the training corpora (``None``: all others); with
            ``split=kfold`` and ``kfold_corpus``: the corpora that train whole beside the folded one.
        kfold_corpus: With ``split=kfold``: fold this corpus's speakers only.
        fold: Test fold index for ``split=kfold`` (0 … ``n_folds - 1``), the held-out session for
            ``split=session``, the EmoBox fold with ``emobox``.
        n_folds: Number of contiguous speaker folds for ``split=kfold`` (unused with ``speaker_folds``).
        val_speakers: Validation speakers (``split=speaker`` and ``kfold``).
        test_speakers: Test speakers (``split=speaker``).
        val_frac: Validation fraction for ``split=random``.
        test_frac: Test fraction for ``split=random``.
        speaker_folds: With ``split=kfold``: explicit speaker groups, one test fold each (e.g.
            EmoBox's RAVDESS actor groups, ``folds=emobox_ravdess``), speakers named as the corpus
            names them (``[[1, 11, 20, 21], [4, 10, 12, 14], ...]``); ``None``: ``n_folds``
            contiguous folds (:func:`~ser_lightning.data.splits.resolve_speaker_folds`).
        seed: Split seed.
        batch_size: Items per batch.
        num_workers: DataLoader workers.
        sampler: How training batches are drawn: ``None`` (default: a shuffle of the training clips)
            or ``balanced`` (:class:`BalancedClassSampler`: with replacement, each class in equal shares in
            expectation, seeded with ``seed``). Validation and test loaders are never resampled. The
            loss-side alternative is ``loss.class_weights=balanced``.
        pin_memory: Pin host memory for faster host-to-GPU copies: ``true``, ``false`` or ``"auto"``
            (default: pin when the trainer's device is a CUDA GPU).
        persistent_workers: Keep the DataLoader workers between epochs (no re-fork per epoch;
            only with ``num_workers > 0``).
        augment: ``{"wave": {...}, "spec": {...}, "views": {...}}`` settings for
            :func:`~ser_lightning.features.augment.build_wave_augment`,
            :func:`~ser_lightning.features.augment.build_spec_augment` and (``data.train_views``)
            :func:`~ser_lightning.features.robust.build_view_chain`.
        test_split: Which split ``test_dataloader`` serves (``eval.py split=val`` etc.); ``all``
            serves every clip and assigns no train/val/test split (``eval.py split=all``).
        run_dir: Where ``split.csv``, ``skipped.csv``, ``class_counts.csv`` and
            ``unknown_labels.csv`` are written.
        decode_workers: Threads decoding audio into the cache.
        progress: Show the cache-building progress bar.
        speaker_norm: Per-speaker normalisation, a separate, transductive protocol
            (:mod:`ser_lightning.data.speaker_norm`): on the frozen-feature path
            (:meth:`use_feature_cache`) each speaker's embeddings are standardised with that speaker's
            own mean and sd over all of that speaker's clips in the data (every split, labels
            unused). Needs the frozen-feature path: the loaders refuse to serve waveforms with it.
        corpus_weights: ``None`` or ``balanced``: on the frozen-feature path every training item carries a loss
            weight ``N / (K * n_c)`` (``N`` training clips, ``K`` training corpora, ``n_c`` clips of its corpus),
            so that each training corpus weighs the same in the loss whatever its size; the classifier
            multiplies it with the class weight (``loss.class_weights``). For full-batch L-BFGS, where a
            resampling sampler cannot apply.
        frontend: The feature frontend of the batch path for use without a trainer; ``None`` (training,
            evaluation): the frontend of the model the attached trainer runs (:meth:`batch_frontend`).
        full_batch_training: On the frozen-feature path, serve the whole training set as one batch (a full-batch
            optimiser, ``optim.name=lbfgs``; ``train.py`` sets it from ``optim``), whatever ``batch_size``.

    Raises:
        ValueError / FileNotFoundError: bad settings, missing data (messages name the setting or path).
    """

    def __init__(
        self,
        root: str | None = None,
        corpora: list[str] | tuple[str, ...] = ("ravdess",),
        label_set: str | list[str] = "ravdess8",
        calm: str = "neutral",
        speakers: list[str] | None = None,
        missing_corpora: str = "error",
        unknown_labels: str = "drop",
        emobox: dict[str, Any] | None = None,
        sample_rate: int = 16000,
        duration_s: float = 3.0,
        normalize: str = "peak",
        trim_silence: bool = False,
        pad_mode: str = "zero",
        crop: str = "center",
        clip_length: str = "fixed",
        train_crop_s: float | None = None,
        test_crops: int = 1,
        train_crops: int = 4,
        train_views: int = 0,
        cache_dir: str = ".ser_cache",
        cache_dtype: str = "float16",
        split: str = "speaker",
        fold: int | None = None,
        n_folds: int = 6,
        speaker_folds: list[list[int | str]] | None = None,
        test_corpora: list[str] | None = None,
        train_corpora: list[str] | None = None,
        kfold_corpus: str | None = None,
        val_speakers: int = 4,
        test_speakers: int = 4,
        val_frac: float = 0.1,
        test_frac: float = 0.2,
        seed: int = 42,
        batch_size: int = 32,
        sampler: str | None = None,
        num_workers: int = 0,
        pin_memory: bool | str = "auto",
        persistent_workers: bool = True,
        augment: dict[str, Any] | None = None,
        test_split: str = "test",
        run_dir: str | None = None,
        decode_workers: int = 2,
        progress: bool = True,
        speaker_norm: bool = False,
        corpus_weights: str | None = None,
        frontend: nn.Module | None = None,
        full_batch_training: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["run_dir", "progress", "decode_workers", "frontend", "full_batch_training"])
        # Validate everything cheap before any file is touched.
        self.audio_cfg = audio_config_from_hparams(self.hparams)
        check_crop_settings(train_crop_s, test_crops, train_crops, self.audio_cfg.clip_length)
        if unknown_labels not in UNKNOWN_LABEL_POLICIES:
            raise ValueError(f"data.unknown_labels={unknown_labels!r} is not one of {list(UNKNOWN_LABEL_POLICIES)}")
        if label_set == "emobox":
            from ser_lightning.data.emobox import emobox_classes

            box = dict(emobox or {})
            label_set = emobox_classes(box.get("metadata_dir"), box.get("corpus"))
            self.hparams["label_set"] = list(label_set)  # the checkpoint keeps the classes, not the lookup
        self.label_set = get_label_set(label_set if isinstance(label_set, str) else list(label_set), calm)
        if test_split not in (*SPLITS, "all"):
            raise ValueError(f"test_split={test_split!r} is not one of {[*SPLITS, 'all']}")
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} must be at least 1")
        if sampler not in SAMPLERS:
            raise ValueError(f"data.sampler={sampler!r} is not one of {list(SAMPLERS)} (null: shuffle)")
        if num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers} must be 0 (load in the main process) or more")
        if speaker_folds is not None:
            check_speaker_folds(speaker_folds)
            if split != "kfold":
                raise ValueError(f"data.speaker_folds is set but data.split={split}: speaker groups are the test folds "
                                 "of data.split=kfold")
        if not isinstance(speaker_norm, bool):
            raise ValueError(f"data.speaker_norm={speaker_norm!r} must be true or false")
        if speaker_norm and (train_crop_s is not None or test_crops > 1):
            raise ValueError("data.speaker_norm=true standardises whole-clip embeddings; it does not take crops "
                             f"(data.train_crop_s={train_crop_s}, data.test_crops={test_crops})")
        if corpus_weights not in CORPUS_WEIGHTS:
            raise ValueError(f"data.corpus_weights={corpus_weights!r} is not one of {list(CORPUS_WEIGHTS)} (null: none)")
        if pin_memory not in (True, False, "auto"):
            raise ValueError(f"data.pin_memory={pin_memory!r} must be true, false or auto")
        augment = augment or {}
        self.wave_augment = build_wave_augment(sample_rate=sample_rate, **dict(augment.get("wave") or {}))
        self.spec_augment = build_spec_augment(**dict(augment.get("spec") or {}))
        if self.audio_cfg.clip_length == "whole" and len(self.wave_augment):
            raise ValueError("data.clip_length=whole does not take waveform augmentation (a time shift or speed "
                             "change would move the padding into the clip); use augment=none")
        self.view_chain, self.view_seed = build_views(augment.get("views"))
        check_view_settings(train_views, self.view_chain, self.audio_cfg.clip_length,
                            train_crop_s is not None and train_crops > 0, speaker_norm)
        self.run_dir = Path(run_dir) if run_dir else None
        self.decode_workers = decode_workers
        self.progress = progress
        self.utterances: list[Utterance] = []
        self.labels = np.zeros(0, dtype=np.int64)
        self.assignment: list[str] = []
        self.skipped: list[tuple[str, str, str]] = []
        self.dropped: list[Utterance] = []  # clips whose emotion the label set drops (eval.py: unscorable)
        self.dropped_counts: dict[tuple[str, str], int] = {}  # (emotion, reason) -> clips
        self.unscorable_rows: dict[str, int] = {}  # path -> cache row of a dropped clip (unknown_labels=unscorable)
        self.cache: CachedWaves | None = None
        self.datasets: dict[str, CachedWaveDataset] = {}
        self.frontend: nn.Module | None = frontend  # None: the attached trainer's model's (see on_after_batch_transfer)
        self.feature_cache_path: Path | None = None  # use_feature_cache(): the frozen-feature cache in use
        # use_feature_cache() with training windows: (path, (n * k, ...) array, k, split -> positions, split -> labels)
        self._crop_features: tuple | None = None
        # use_feature_cache() with views: (path, clean + views array, n clean rows, k, split -> (positions, view positions,
        # labels, cache rows)); train_item_rows: the cache row of every training item (its clip's, for a view)
        self._view_features: tuple | None = None
        self.train_item_rows: np.ndarray | None = None
        self.row_corpus: np.ndarray = np.zeros(0, dtype=object)  # corpus of each cache row ("" where not decoded)
        self.row_clip_id: np.ndarray = np.zeros(0, dtype=object)  # each scored cache row's identity (views' seeds)
        self.norm_stats: dict[str, tuple[float, float]] | None = None  # set_norm_stats(): corpus -> (mean, sd)
        self.row_norm_stats: np.ndarray | None = None  # (cache rows, 2) mean, sd per row (NaN: no statistics)
        self._scored_rows: np.ndarray | None = None  # setup(): cache rows of the scored, decoded clips
        #: Serve the whole training set as one batch on the frozen-feature path (optim=lbfgs: see __init__).
        self.full_batch_training = bool(full_batch_training)

    @property
    def class_names(self) -> list[str]:
        """Class names in index order."""
        return list(self.label_set.classes)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.label_set.num_classes

    def _scan(self) -> tuple[list[Utterance], np.ndarray, list[tuple[str, str, str]]]:
        hp = self.hparams
        if hp.missing_corpora not in ("error", "skip"):
            raise ValueError(f"data.missing_corpora={hp.missing_corpora!r} is not one of ['error', 'skip']")
        emobox = {**dict(hp.get("emobox") or {}), "fold": hp.fold}
        scan = scan_corpora(resolve_data_root(hp.root), list(hp.corpora), skip_missing=hp.missing_corpora == "skip",
                            emobox=emobox)
        skipped = [(p, "parse", r) for p, r in scan.skipped]
        utts, labels, dropped = [], [], Counter()
        self.dropped = []
        keep = set(hp.speakers) if hp.speakers else None
        policy = hp.get("unknown_labels", "drop")
        for u in scan.utterances:
            if keep is not None and u.speaker not in keep:
                continue
            if u.emotion not in VOCABULARY:
                y, reason = None, "not in the vocabulary"
            else:
                y, reason = self.label_set.index(u.emotion, source=u.path), f"outside label set {self.label_set.name}"
            if y is None:
                by_calm = u.emotion == "calm" and hp.calm == "drop"
                if by_calm:
                    reason = "data.calm=drop"
                elif policy == "error":
                    raise ValueError(
                        f"{u.path}: emotion {u.emotion!r} is {reason} (classes {list(self.label_set.classes)}); "
                        "data.unknown_labels=drop or unscorable leaves such clips out, or choose another data.label_set"
                    )
                dropped[(u.emotion, reason)] += 1
                self.dropped.append(u)
                continue
            utts.append(u)
            labels.append(y)
        if keep is not None and not utts:
            raise ValueError(f"data.speakers={sorted(keep)} matched no files")
        self.dropped_counts = dict(sorted(dropped.items()))
        if dropped:
            log.warning("data.unknown_labels=%s: %d clip(s) left out of label set %s: %s (counts in unknown_labels.csv "
                        "of the run directory)", policy, sum(dropped.values()), self.label_set.name,
                        {f"{e} ({r})": n for (e, r), n in self.dropped_counts.items()})
        if not utts:
            raise ValueError(f"no clip of {list(hp.corpora)} has an emotion of label set {self.label_set.name} "
                             f"{list(self.label_set.classes)}")
        return utts, np.asarray(labels, dtype=np.int64), skipped

    def _cache_paths(self, utts: list[Utterance]) -> list[str]:
        """Files to decode: the scored clips, then (``unknown_labels=unscorable``) the dropped ones."""
        extra = [u.path for u in self.dropped] if self.hparams.get("unknown_labels") == "unscorable" else []
        return [u.path for u in utts] + extra

    def prepare_data(self) -> None:
        """Decode the corpus into the cache (rank 0 only under DDP; other ranks reuse it)."""
        if self.cache is not None:
            return
        utts, _, _ = self._scan()
        build_or_load(self._cache_paths(utts), self.audio_cfg, self.hparams.cache_dir, self.hparams.cache_dtype,
                      workers=self.decode_workers, progress=self.progress)

    def setup(self, stage: str | None = None) -> None:
        """Scan, open the cache, split by speaker and write the split to the run directory."""
        if self.datasets:
            return
        hp = self.hparams
        utts, labels, skipped = self._scan()
        self.cache = build_or_load(self._cache_paths(utts), self.audio_cfg, hp.cache_dir, hp.cache_dtype,
                                   workers=self.decode_workers, progress=self.progress)
        skipped += [(p, "decode", r) for p, r in self.cache.skipped]
        ok = self.cache.ok
        n = len(utts)
        self.unscorable_rows = {u.path: n + i for i, u in enumerate(self.dropped)
                                if n + i < len(ok) and ok[n + i]}
        rows = np.flatnonzero(ok[:n])
        self._scored_rows = rows
        self.utterances = [utts[i] for i in rows]
        self.labels = labels[rows]
        self.row_corpus = np.full(len(ok), "", dtype=object)
        self.row_corpus[rows] = [u.corpus for u in self.utterances]
        self.row_clip_id = np.full(len(ok), "", dtype=object)
        root = resolve_data_root(hp.root)
        self.row_clip_id[rows] = [clip_identity(u.path, u.corpus, root) for u in self.utterances]
        for i, u in enumerate(self.dropped):
            if self.unscorable_rows.get(u.path) == n + i:
                self.row_corpus[n + i] = u.corpus
        self.skipped = skipped
        # test_split=all: every clip, no split (eval.py split=all); split=all: every clip trains (the final model)
        names = ("all",) if hp.test_split == "all" else ("train",) if hp.split == "all" else SPLITS
        self.assignment = ["all"] * len(self.utterances) if hp.test_split == "all" else assign_splits(
            self.utterances, self.labels.tolist(), mode=hp.split, seed=hp.seed,
            val_speakers=hp.val_speakers, test_speakers=hp.test_speakers, fold=hp.fold,
            n_folds=hp.n_folds, val_frac=hp.val_frac, test_frac=hp.test_frac,
            speaker_groups=hp.get("speaker_folds"), test_corpora=hp.get("test_corpora"),
            train_corpora=hp.get("train_corpora"), kfold_corpus=hp.get("kfold_corpus"),
        )
        assign = np.asarray(self.assignment)
        waves_path = self.cache.directory / "waves.npy"
        for name in names:
            sel = np.flatnonzero(assign == name)
            if len(sel) == 0:
                raise ValueError(f"split {name!r} is empty (data.split={hp.split}); check the speaker settings")
            lengths = self.cache.lengths[rows[sel]] if self.audio_cfg.clip_length == "whole" else None
            self.datasets[name] = CachedWaveDataset(waves_path, rows[sel], self.labels[sel], lengths,
                                                    **self._crop_kwargs(name))
        for name in names:
            counts = class_counts(self.datasets[name].labels.tolist(), self.label_set)
            n_spk = len({u.speaker for u, a in zip(self.utterances, self.assignment) if a == name})
            log.info("%s: %d files, %d speakers, class counts %s", name, len(self.datasets[name]), n_spk, counts)
        if skipped:
            log.warning("%d file(s) skipped; listed in skipped.csv of the run directory", len(skipped))
        if self.run_dir is not None:
            self.write_run_files(self.run_dir)

    @property
    def crop_samples(self) -> int | None:
        """``data.train_crop_s`` in samples, or ``None`` (whole clips)."""
        crop_s = self.hparams.get("train_crop_s")
        return None if crop_s is None else max(1, int(round(float(crop_s) * self.audio_cfg.sample_rate)))

    def crop_window_counts(self) -> dict[str, int | None]:
        """Windows per clip of the training and of the validation/test splits (:mod:`ser_lightning.data.crops`).

        Returns:
            ``{"train": data.train_crops, "test": data.test_crops}``, each ``None`` where those clips stay whole:
            training clips without ``data.train_crop_s`` or with ``data.train_crops=0``, validation/test clips
            with ``data.test_crops=1``.
        """
        if self.crop_samples is None:
            return {"train": None, "test": None}
        train_k, test_n = int(self.hparams.get("train_crops", 4)), int(self.hparams.get("test_crops", 1))
        return {"train": train_k if train_k > 0 else None, "test": test_n if test_n > 1 else None}

    def _crop_kwargs(self, split: str) -> dict[str, Any]:
        """Waveform-path crop arguments of a split's :class:`CachedWaveDataset` (see :mod:`ser_lightning.data.crops`):
        a random window per training clip, ``data.test_crops`` evenly spaced windows per validation/test clip."""
        counts = self.crop_window_counts()
        if split == "train":
            return {} if counts["train"] is None else {"crop_samples": self.crop_samples, "crop_count": 0}
        return {} if counts["test"] is None else {"crop_samples": self.crop_samples, "crop_count": counts["test"]}

    def split_utterances(self, name: str) -> list[Utterance]:
        """The clips of a split in the order its (unshuffled) loader serves them (after :meth:`setup`).

        Args:
            name: ``train``, ``val``, ``test`` or ``all`` (as assigned by the split; a refit's merged
                training set is not covered).
        """
        return [u for u, a in zip(self.utterances, self.assignment) if a == name]

    def train_corpus_class_counts(self) -> dict[str, list[int]]:
        """Training items per class of each training corpus (after :meth:`setup`; a refit's merged set included)."""
        train = np.asarray(self.assignment) == "train"  # clips, whatever items (crops, views) they give
        corpora = np.asarray([u.corpus for u in self.utterances], dtype=object)[train]
        labels = self.labels[train]
        return {str(c): list(class_counts(labels[corpora == c].tolist(), self.label_set).values())
                for c in sorted(set(corpora.tolist()))}

    def train_class_counts(self) -> list[int]:
        """Training items per class, in class order (after :meth:`setup`)."""
        return list(class_counts(self.datasets["train"].labels.tolist(), self.label_set).values())

    def write_run_files(self, run_dir: str | Path) -> None:
        """Write ``split.csv`` (path, corpus, speaker, emotion, label, split), ``skipped.csv``
        (path, stage, reason), ``class_counts.csv`` (split × class) and ``unknown_labels.csv``
        (emotion, reason, clips; see ``unknown_labels``) into ``run_dir``."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "split.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "corpus", "speaker", "emotion", "label", "split"])
            for u, y, s in zip(self.utterances, self.labels, self.assignment):
                w.writerow([u.path, u.corpus, u.speaker, u.emotion, self.label_set.classes[y], s])
        with (run_dir / "skipped.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "stage", "reason"])
            w.writerows(self.skipped)
        with (run_dir / "class_counts.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["split", *self.class_names])
            for name in self.datasets:
                w.writerow([name, *class_counts(self.datasets[name].labels.tolist(), self.label_set).values()])
        with (run_dir / "unknown_labels.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["emotion", "reason", "clips", "policy"])
            for (emotion, reason), count in self.dropped_counts.items():
                w.writerow([emotion, reason, count, self.hparams.get("unknown_labels", "drop")])

    def _pin_memory(self) -> bool:
        """``data.pin_memory``, with ``"auto"`` resolved: pin when the trainer runs on a CUDA device."""
        pin = self.hparams.pin_memory
        if pin != "auto":
            return bool(pin)
        strategy = getattr(self.trainer, "strategy", None)
        device = getattr(strategy, "root_device", None)
        return device is not None and device.type == "cuda"

    @property
    def protocol(self) -> str:
        """``plain``, or the per-speaker normalisation protocol (``data.speaker_norm=true``), for ``metrics.json``."""
        return protocol_name(bool(self.hparams.get("speaker_norm", False)))

    def _loader(self, name: str, shuffle: bool, sampler: BalancedClassSampler | None = None,
                batch_size: int | None = None) -> DataLoader:
        hp = self.hparams
        if hp.get("speaker_norm") and self.feature_cache_path is None:
            raise ValueError("data.speaker_norm=true standardises cached frozen features per speaker, but "
                             "this run feeds waveforms (no frozen-feature path); use a frozen encoder model with "
                             "model.feature_cache=auto and no waveform augmentation, or data.speaker_norm=false")
        return DataLoader(
            self.datasets[name], batch_size=batch_size or hp.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
            num_workers=hp.num_workers,
            pin_memory=self._pin_memory(), persistent_workers=bool(hp.persistent_workers) and hp.num_workers > 0,
            collate_fn=collate_batch,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches ``((batch, time), (batch,))``; with ``data.sampler=balanced`` drawn by a
        :class:`BalancedClassSampler` over the current training clips instead. With :attr:`full_batch_training`
        on the frozen-feature path, every training item in one batch whatever ``data.batch_size`` (a full-batch
        optimiser, L-BFGS, sees one fixed objective however many corpora, views or windows there are)."""
        if self.view_count() and self._view_features is None:
            raise ValueError(f"data.train_views={self.view_count()} adds cached augmented views of a frozen encoder's "
                             "input, but this run feeds waveforms (no frozen-feature path); use a frozen encoder model "
                             "with model.feature_cache=auto, or data.train_views=0")
        sampler = None
        if self.hparams.get("sampler") == "balanced":
            sampler = BalancedClassSampler(self.datasets["train"].labels, seed=self.hparams.seed)
            log.info("data.sampler=balanced: %d training clips drawn with replacement, classes in equal shares",
                     len(sampler))
        full = len(self.datasets["train"]) if self.full_batch_training and self.feature_cache_path is not None else None
        return self._loader("train", shuffle=True, sampler=sampler, batch_size=full)

    def val_dataloader(self) -> DataLoader:
        """Validation batches, fixed order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of ``test_split`` (default ``test``), fixed order."""
        return self._loader(self.hparams.test_split, shuffle=False)

    @property
    def waveform_augmented(self) -> bool:
        """True when training batches get waveform augmentation (the encoder's input changes per epoch)."""
        return len(self.wave_augment) > 0

    def cache_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every decoded cache row of a scored clip, sorted, with its valid length in samples (after
        :meth:`setup`): the clips of every split, and those a ``corpus``/``kfold_corpus`` split leaves
        ``unused``, so that every cell of a protocol over the same ``corpora`` shares one frozen-feature cache.

        Returns:
            ``(rows (n,), lengths (n,))`` int64: the clips to embed for the frozen-feature cache.
        """
        rows = self._scored_rows if self._scored_rows is not None else \
            np.unique(np.concatenate([d.rows for d in self.datasets.values()]))
        return rows, self.cache.lengths[rows]

    def all_clips_dataloader(self, rows: np.ndarray, batch_size: int | None = None) -> DataLoader:
        """Whole clips of the given cache rows, in order, as :class:`WholeClipBatch` (targets are
        the row indices), for the frozen-feature extraction loop.

        Args:
            rows: Cache rows ``(n,)``.
            batch_size: Clips per batch (default ``data.batch_size``).
        """
        lengths = self.cache.lengths[rows] if self.audio_cfg.clip_length == "whole" else \
            np.full(len(rows), self.audio_cfg.num_samples, dtype=np.int64)
        norm = None if self.row_norm_stats is None else self.row_norm_stats[rows]
        ds = CachedWaveDataset(self.cache.directory / "waves.npy", rows, rows, lengths, norm_stats=norm)
        return DataLoader(ds, batch_size=batch_size or self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=collate_batch)

    def window_clips_dataloader(self, rows: np.ndarray, count: int, batch_size: int | None = None) -> DataLoader:
        """The ``count`` evenly spaced ``data.train_crop_s`` windows of each given cache row, in order, as
        :class:`WholeClipBatch` whose targets are the window indices ``position * count + j`` (position of
        the row in ``rows``), for the frozen-feature extraction of crops (:mod:`ser_lightning.data.crops`).

        Args:
            rows: Cache rows ``(n,)``.
            count: Windows per clip.
            batch_size: Windows per batch (default ``data.batch_size``).

        Raises:
            ValueError: ``data.train_crop_s`` is not set.
        """
        if self.crop_samples is None:
            raise ValueError("window_clips_dataloader needs data.train_crop_s")
        starts, lens = even_windows(self.cache.lengths[rows], self.crop_samples, count)
        norm = None if self.row_norm_stats is None else np.repeat(self.row_norm_stats[rows], count, axis=0)
        ds = _WindowDataset(self.cache.directory / "waves.npy", np.repeat(rows, count), starts.reshape(-1),
                            lens.reshape(-1), norm)
        return DataLoader(ds, batch_size=batch_size or self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=collate_batch)

    def view_count(self) -> int:
        """Augmented views per training clip (``data.train_views``; 0: none)."""
        return int(self.hparams.get("train_views", 0) or 0)

    def view_rows(self) -> np.ndarray:
        """Cache rows whose views are embedded (after :meth:`setup`, before :meth:`use_feature_cache`): every clip
        of each corpus that has training or validation clips (:mod:`ser_lightning.data.views`), sorted."""
        rows, _ = self.cache_rows()
        used = np.concatenate([self.datasets[n].rows for n in ("train", "val") if n in self.datasets])
        corpora = set(self.row_corpus[used].tolist())
        return rows[np.isin(self.row_corpus[rows], list(corpora))]

    def view_clips_dataloader(self, rows: np.ndarray, views: list[int], batch_size: int | None = None) -> DataLoader:
        """The augmented views ``views`` (indices j) of each given cache row, in order, as :class:`WholeClipBatch`
        whose targets are the item indices ``position * len(views) + m`` (position of the row in ``rows``), for
        the frozen-feature extraction of ``data.train_views`` (:mod:`ser_lightning.data.views`).

        Args:
            rows: Cache rows ``(n,)``.
            views: View indices per clip (e.g. ``[j]``: view j of every clip).
            batch_size: Views per batch (default ``data.batch_size``).
        """
        norm = None if self.row_norm_stats is None else self.row_norm_stats[rows]
        ds = _ViewDataset(self.cache.directory / "waves.npy", rows, self.cache.lengths[rows],
                          self.row_clip_id[rows].tolist(), views, self.view_chain, self.view_seed, self.audio_cfg, norm)
        return DataLoader(ds, batch_size=batch_size or self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=collate_batch)

    def merge_validation_into_training(self) -> int:
        """Train on the training and validation speakers together (``train.py refit=true``).

        After the settings (e.g. the number of epochs) were chosen on the validation speakers, the
        model is trained again on all non-test speakers; the test split is unchanged, and the
        validation split stays as it was (a refit does not validate). ``split.csv`` of the run
        directory keeps the selection split; :attr:`assignment` now says ``train`` for the
        validation clips.

        Returns:
            The number of training speakers now.

        Raises:
            RuntimeError: called before :meth:`setup`, or without a validation split.
        """
        if "train" not in self.datasets or "val" not in self.datasets:
            raise RuntimeError("merge_validation_into_training needs setup() with a train and a val split")
        tr, va = self.datasets["train"], self.datasets["val"]
        if self._view_features is not None:  # frozen-feature path with views: clean + views of both
            path, array, n, k, parts = self._view_features
            self.datasets["train"], self.train_item_rows = self._view_items(
                path, array, n, k, *(np.concatenate([parts["train"][i], parts["val"][i]]) for i in range(4)))
            self._weigh_view_items()
        elif self._crop_features is not None:  # frozen-feature path with training windows: every window of both
            path, flat, k, positions, labels = self._crop_features
            self.datasets["train"] = self._window_items(path, flat, k, np.concatenate([positions["train"], positions["val"]]),
                                                        np.concatenate([labels["train"], labels["val"]]))
        else:
            lengths = None if tr.lengths is None else np.concatenate([tr.lengths, va.lengths])
            merged = np.concatenate([tr.rows, va.rows])
            weights = None if tr.weights is None else self._corpus_weights(
                [u.corpus for u in self.split_utterances("train") + self.split_utterances("val")])
            self.datasets["train"] = CachedWaveDataset(tr.waves_path, merged, weights=weights,
                                                       labels=np.concatenate([tr.labels, va.labels]),
                                                       lengths=lengths, frozen_features=tr.frozen_features,
                                                       array=tr._waves if tr.frozen_features else None,  # speaker_norm's copy
                                                       norm_stats=None if tr.norm_stats is None else
                                                       np.concatenate([tr.norm_stats, va.norm_stats]),
                                                       crop_samples=tr.crop_samples, crop_count=tr.crop_count)
        self.assignment = ["train" if a == "val" else a for a in self.assignment]
        n_spk = len({u.speaker for u, a in zip(self.utterances, self.assignment) if a == "train"})
        log.info("refit: training on %d clips of %d speakers (training + validation)", len(self.datasets["train"]), n_spk)
        return n_spk

    def _weigh_view_items(self) -> None:
        """``data.corpus_weights`` on a training set of clean embeddings and views: each item weighed by its clip's
        corpus (:attr:`train_item_rows`)."""
        if self.hparams.get("corpus_weights"):
            self.datasets["train"].weights = self._corpus_weights(self.row_corpus[self.train_item_rows].tolist())

    @staticmethod
    def _corpus_weights(corpora: list[str]) -> np.ndarray:
        """``data.corpus_weights=balanced``: weight ``N / (K * n_c)`` per item (see the class docstring).

        Args:
            corpora: The corpus of every training item, in item order.

        Returns:
            ``(len(corpora),)`` float32 weights; they sum to ``N``.
        """
        names, inverse, counts = np.unique(np.asarray(corpora, dtype=object).astype(str), return_inverse=True,
                                           return_counts=True)
        weights = len(corpora) / (len(names) * counts)
        log.info("data.corpus_weights=balanced: %s", {str(n): round(float(w), 4) for n, w in zip(names, weights)})
        return weights[inverse].astype(np.float32)

    @staticmethod
    def _window_items(path: str | Path, flat: np.ndarray, k: int, positions: np.ndarray,
                      labels: np.ndarray) -> CachedWaveDataset:
        """A training set of every window of the given clips: item ``p * k + j`` of ``flat`` is window ``j`` of
        embedding row ``p``; each window keeps its clip's label."""
        items = (np.asarray(positions, dtype=np.int64)[:, None] * k + np.arange(k)).reshape(-1)
        return CachedWaveDataset(path, items, np.repeat(labels, k), frozen_features=True, array=flat)

    @staticmethod
    def _view_items(path: str | Path, array: np.ndarray, n: int, k: int, positions: np.ndarray,
                    view_positions: np.ndarray, labels: np.ndarray, clip_rows: np.ndarray
                    ) -> tuple[CachedWaveDataset, np.ndarray]:
        """A training set of the given clips' clean embeddings and their ``k`` views each: ``array`` holds the
        ``n`` clean rows, then view ``j`` of view row ``v`` at ``n + v * k + j``; every view keeps its clip's label.

        Returns:
            The dataset, and the cache row of each of its items ``(len,)``.
        """
        views = n + (np.asarray(view_positions, dtype=np.int64)[:, None] * k + np.arange(k)).reshape(-1)
        items = np.concatenate([np.asarray(positions, dtype=np.int64), views])
        ds = CachedWaveDataset(path, items, np.concatenate([labels, np.repeat(labels, k)]), frozen_features=True, array=array)
        return ds, np.concatenate([clip_rows, np.repeat(clip_rows, k)])

    def use_feature_cache(self, feature_cache_path: str | Path, rows: np.ndarray,
                       train_windows: tuple[str | Path, int] | None = None,
                       test_windows: tuple[str | Path, int] | None = None,
                       train_views: tuple[list[str | Path], np.ndarray] | None = None) -> None:
        """Serve cached frozen features instead of waveforms (the frozen-encoder path).

        Every split's dataset reads ``feature_cache_path`` (one row per entry of ``rows``, in that
        order); batches become :class:`FrozenFeatureBatch` and :meth:`on_after_batch_transfer` passes
        them on without the frontend.

        Args:
            feature_cache_path: The frozen-feature cache's ``embeddings.npy`` ``(len(rows), ...)``.
            rows: The cache rows the embedding rows belong to (sorted, as from :meth:`cache_rows`).

        With ``data.speaker_norm=true`` the splits read an in-memory copy in which each speaker's
        rows are standardised with that speaker's own statistics over all of that speaker's clips
        in the data (:func:`~ser_lightning.data.speaker_norm.standardise_per_speaker`; labels are
        not read); ``speaker_norm.csv`` in the run directory lists the speakers and their clip counts.

        Crops (:mod:`ser_lightning.data.crops`): with ``train_windows`` the training split serves every
        window of every training clip as an item; with ``test_windows`` the validation and test splits
        serve each clip's windows as a :class:`CropBatch` (class probabilities averaged by the classifier).

        Args:
            feature_cache_path: See above.
            rows: See above.
            train_windows: ``(path, k)``: ``embeddings.npy`` ``(len(rows), k, ...)`` of ``k`` windows per clip
                (``data.train_crop_s``, ``data.train_crops``), or ``None`` (whole clips).
            test_windows: ``(path, n)`` likewise for the ``data.test_crops`` windows, or ``None``.
            train_views: ``(paths, view_rows)``: one ``embeddings.npy`` ``(len(view_rows), ...)`` per view index j
                (``k = len(paths)`` augmented views of each of ``view_rows``; ``data.train_views``, :meth:`view_rows`); the training
                split then serves every training clip's clean embedding and its ``k`` views' (the validation
                clips' views wait for the refit), and :attr:`train_item_rows` says each item's clip. ``None``: none.

        Raises:
            ValueError: a split uses a cache row that has no embedding, or a training or validation clip has no views.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if self.hparams.get("corpus_weights") and (train_windows is not None or test_windows is not None):
            raise ValueError("data.corpus_weights weighs whole clips; it does not take crops (data.train_crop_s)")
        positions = {}
        for name, ds in self.datasets.items():
            pos = np.searchsorted(rows, ds.rows)
            if bool((pos >= len(rows)).any()) or not np.array_equal(rows[np.minimum(pos, len(rows) - 1)], ds.rows):
                raise ValueError(f"the frozen-feature cache {feature_cache_path} lacks clips of split {name!r}")
            positions[name] = pos
        array = self._speaker_normalised(feature_cache_path, positions) if self.hparams.get("speaker_norm") else None
        windows = {}
        for which, spec in (("train", train_windows), ("test", test_windows)):
            if spec is not None:
                data = np.load(spec[0])  # (len(rows), k, ...) float32, into memory once
                windows[which] = (spec[0], data.reshape(data.shape[0] * data.shape[1], *data.shape[2:]), int(spec[1]))
        labels = {name: self.datasets[name].labels for name in positions}
        views = None
        if train_views is not None:
            views = self._load_views(feature_cache_path, rows, positions, labels, *train_views)
        for name, pos in positions.items():
            if name == "train" and views is not None:
                path, array, n, k, parts = views
                self.datasets[name], self.train_item_rows = self._view_items(path, array, n, k, *parts["train"])
                self._weigh_view_items()
            elif name == "train" and "train" in windows:
                path, flat, k = windows["train"]
                self.datasets[name] = self._window_items(path, flat, k, pos, labels[name])
            elif name != "train" and "test" in windows:
                path, flat, k = windows["test"]
                self.datasets[name] = CachedWaveDataset(path, pos, labels[name], frozen_features=True, array=flat, crop_count=k)
            else:
                weights = self._corpus_weights([u.corpus for u in self.split_utterances("train")]) \
                    if name == "train" and self.hparams.get("corpus_weights") else None
                self.datasets[name] = CachedWaveDataset(feature_cache_path, pos, labels[name], frozen_features=True, array=array,
                                                        weights=weights)
        if "train" in windows:
            self._crop_features = (*windows["train"], positions, labels)
        self._view_features = views
        self.feature_cache_path = Path(feature_cache_path)

    def _load_views(self, feature_cache_path: str | Path, rows: np.ndarray, positions: dict[str, np.ndarray],
                    labels: dict[str, np.ndarray], views_paths: list[str | Path], view_rows: np.ndarray) -> tuple:
        """The clean embeddings and the views in one in-memory array, and each of the training and validation
        splits' ``(clean positions, view positions, labels, cache rows)`` in it (see :meth:`_view_items`)."""
        clean = np.load(feature_cache_path)  # (n, ...) float32, into memory once
        k = len(views_paths)
        flat = np.stack([np.load(p) for p in views_paths], axis=1)  # (len(view_rows), k, ...)
        view_rows = np.asarray(view_rows, dtype=np.int64)
        array = np.concatenate([clean, flat.reshape(flat.shape[0] * k, *flat.shape[2:])])
        views_path = views_paths[0]
        parts = {}
        for name in ("train", "val"):
            if name not in positions:
                continue
            clip_rows = rows[positions[name]]
            vpos = np.searchsorted(view_rows, clip_rows)
            if bool((vpos >= len(view_rows)).any()) or \
                    not np.array_equal(view_rows[np.minimum(vpos, len(view_rows) - 1)], clip_rows):
                raise ValueError(f"the views cache {views_path} lacks clips of split {name!r}")
            parts[name] = (positions[name], vpos, labels[name], clip_rows)
        return views_path, array, len(clean), int(k), parts

    def _speaker_normalised(self, feature_cache_path: str | Path, positions: dict[str, np.ndarray]) -> np.ndarray:
        """The embeddings with each speaker's rows standardised by that speaker's statistics over every split.

        Args:
            feature_cache_path: ``embeddings.npy`` ``(n, hidden_states, pooled_dim)``.
            positions: Embedding row of each item, per split (in the order of the split's utterances).

        Returns:
            ``(n, hidden_states, pooled_dim)`` float32; rows no split uses are left as they are.
        """
        out = np.load(feature_cache_path)  # float32 (checked when the cache was opened), read into memory once
        speaker_of = {}
        assign = np.asarray(self.assignment)
        for name, pos in positions.items():
            for p, i in zip(pos, np.flatnonzero(assign == name)):
                speaker_of[int(p)] = self.utterances[i].speaker
        used = np.asarray(sorted(speaker_of), dtype=np.int64)
        out[used], table = standardise_per_speaker(out[used], [speaker_of[int(p)] for p in used])
        log.info("data.speaker_norm=true: %s; %d clips of %d speakers", self.protocol, len(used), len(table))
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with (self.run_dir / "speaker_norm.csv").open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["speaker", "clips", "statistics"])
                w.writerows(table)
        return out

    def set_norm_stats(self, stats: dict[str, tuple[float, float]]) -> None:
        """Standardise every clip's log-mel with its own corpus's mean and sd (``model.norm_stats=per_corpus``).

        From now on whole-clip batches carry ``norm_stats`` ``(batch, 2)``, looked up per clip from
        its corpus, and :meth:`on_after_batch_transfer` hands them to the network with the
        waveforms (also :meth:`all_clips_dataloader`, for the frozen-feature extraction). Call it
        after :meth:`setup` and before :meth:`use_feature_cache`.

        Args:
            stats: Corpus name (as in ``split.csv``) → ``(mean, sd)``.

        Raises:
            ValueError: clips are fixed-length (``data.clip_length=fixed``), a corpus of the
                served clips has no statistics, or an sd is not positive.
        """
        if self.audio_cfg.clip_length != "whole":
            raise ValueError("model.norm_stats=per_corpus needs data.clip_length=whole (the encoder models' batches)")
        for corpus, (_, sd) in stats.items():
            if not sd > 0:
                raise ValueError(f"norm statistics of corpus {corpus!r}: sd={sd} must be positive")
        self.norm_stats = {str(c): (float(m), float(s)) for c, (m, s) in stats.items()}
        table = np.full((len(self.row_corpus), 2), np.nan, dtype=np.float32)
        for corpus, mean_sd in self.norm_stats.items():
            table[self.row_corpus == corpus] = mean_sd
        for name, ds in self.datasets.items():
            if ds.frozen_features:
                continue
            lacking = sorted({str(c) for c in self.row_corpus[ds.rows[np.isnan(table[ds.rows, 0])]]})
            if lacking:
                raise ValueError(f"split {name!r}: no norm statistics for corpus {lacking} (have {sorted(stats)})")
            ds.norm_stats = table[ds.rows]
        self.row_norm_stats = table

    def set_frontend(self, frontend: nn.Module) -> None:
        """Use ``frontend`` for the batch path without a trainer (config validation's dry run, benchmarks, tests).

        Training and evaluation need not call it: attached to a trainer, the data module uses the frontend of
        the model that trainer runs (:meth:`batch_frontend`).

        Args:
            frontend: Waveforms ``(batch, time)`` → features ``(batch, channels, n_feats, frames)``
                (or the waveform itself, for a waveform network).
        """
        self.frontend = frontend

    def batch_frontend(self) -> nn.Module:
        """The frontend batches go through: the one given (``frontend=`` / :meth:`set_frontend`), else the frontend
        of the ``SERClassifier`` the attached trainer runs (one frontend: the batch path and the model's
        ``forward``, so training, evaluation, prediction and export compute identical features).

        Raises:
            RuntimeError: no frontend given and no trainer with a model attached.
        """
        if self.frontend is not None:
            return self.frontend
        model = self.trainer.lightning_module if self.trainer is not None else None
        if model is None or getattr(model, "frontend", None) is None:
            raise RuntimeError("SERDataModule has no feature frontend: attach it to a trainer running a SERClassifier "
                               "(trainer.fit/test(model, datamodule=dm)) or pass frontend= (dm.set_frontend) to use "
                               "the batch path on its own")
        return model.frontend

    def on_after_batch_transfer(self, batch, dataloader_idx: int = 0, *, training: bool | None = None):
        """The batch path, on the device: waveform augmentation → features → SpecAugment.

        Training batches are augmented (speed, time shift, gain, noise), turned into features by
        the model's frontend (:meth:`batch_frontend`), then SpecAugment-ed; validation and
        test batches only get the features. Lightning calls this after moving a batch to the
        device; config validation's dry run, the pipeline benchmark and the W&B augmentation
        examples call it with ``training`` given.

        Args:
            batch: ``(waves (batch, time), target (batch,))``.
            dataloader_idx: Unused (Lightning's argument).
            training: Augment or not; ``None``: whether the attached trainer is training.

        Returns:
            ``(features (batch, channels, n_feats, frames), target (batch,))`` (for a waveform
            network the features are the waveforms ``(batch, time)``); for whole clips
            (``data.clip_length=whole``) ``((features, lengths (batch,)), target)``, or
            ``((features, lengths, norm_stats (batch, 2)), target)`` after :meth:`set_norm_stats`; for cached
            frozen features (:meth:`use_feature_cache`) ``(FrozenFeatures(pooled), target)`` (``(..., weight)``
            with ``data.corpus_weights``); for a :class:`CropBatch`
            ``(CropGroups(inputs of its batch * crops windows, crops), target (batch,))``.

        Raises:
            RuntimeError: no frontend (:meth:`batch_frontend`), or ``training=None`` without a trainer.
        """
        if training is None:
            if self.trainer is None:
                raise RuntimeError("SERDataModule.on_after_batch_transfer needs training=True/False without a trainer")
            training = bool(self.trainer.training)
        if isinstance(batch, CropBatch):  # windows of each clip: the classifier averages their probabilities
            inputs, _ = self.on_after_batch_transfer(batch.batch, dataloader_idx, training=training)
            return CropGroups(inputs, batch.crops), batch.target
        if isinstance(batch, FrozenFeatureBatch):  # the head's input, marked as such for the classifier
            if batch.weight is not None:  # data.corpus_weights: (features, target, weight)
                return FrozenFeatures(batch.features), batch.target, batch.weight
            return FrozenFeatures(batch.features), batch.target
        wave, target = batch[0], batch[1]
        if training:
            wave = self.wave_augment(wave)
        with torch.no_grad():
            feats = self.batch_frontend()(wave)
        if training and feats.dim() == 4:  # SpecAugment needs a spectrogram, not a raw waveform
            feats = self.spec_augment(feats)
        if isinstance(batch, WholeClipBatch):
            if batch.norm_stats is not None:  # per-corpus statistics: each clip standardised with its corpus's
                return (feats, batch.lengths, batch.norm_stats), target
            return (feats, batch.lengths), target
        return feats, target
