"""Classify files window by window: :func:`predict_files`, the scheduler behind ``predict.py`` and the Python API.

Windows of several files share a batch; a file's label is the arg-max of the mean of its windows' probabilities.
Voice activity detection (``vad.enabled=true``, the default of ``predict.py`` and the Python API;
:mod:`ser_lightning.inference.vad`, Silero VAD on the CPU) runs on each decoded file first: a window with too
little speech (``vad.min_speech_fraction``) is reported as ``status="no speech"`` with its speech fraction instead
of an emotion, the file's emotion is the mean over its speech windows, and a file without speech (a tone, a
constant signal, noise, digital silence) is ``no speech`` as a whole. ``segment=vad`` cuts a file at the detected
speech segments instead of fixed windows, each reported with its start and end in seconds.

Bad files (unreadable, empty, shorter than 25 ms, NaN/inf samples; all-silent without the detector) get
``status=error`` and a one-line ``error`` in every output while the other files are classified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser_lightning.data.audio import (
    AudioDecodeError,
    trim_silence,
)
from ser_lightning.data.speaker_norm import standardise
from ser_lightning.inference.adaptation import (
    label_subset,
    restrict_probabilities,
)
from ser_lightning.inference.loading import LoadedModel, reference_refused, reference_required
from ser_lightning.inference.speaker_reference import (
    SpeakerStats,
)
from ser_lightning.inference.vad import (
    NO_SPEECH,
    SEGMENT_MODES,
    VadSettings,
    speech_fraction,
    speech_segments,
)
from ser_lightning.inference.windows import (
    AudioArray,
    SilentAudioError,
    check_hop_s,
    decode_mono,
    make_window,
    window_length,
    window_starts,
)

log = logging.getLogger(__name__)


class PredictionFailed(ValueError):
    """No file could be classified (or, with ``strict=true``, some file failed)."""


@dataclass
class _Unit:
    """One reported span of a file (a window, or a speech segment with ``segment="vad"``), in wave samples."""

    start: int
    end: int
    speech_fraction: float | None
    starts: list[int]  # model windows inside the span, relative to ``start``; empty = not classified (no speech)
    probs: list[np.ndarray | None] = field(default_factory=list)


@dataclass
class _Pending:
    index: int
    wave: np.ndarray
    units: list[_Unit]
    offset: int = 0  # samples trimmed off the start (times are reported in the original file)

    def done(self) -> bool:
        return all(r is not None for u in self.units for r in u.probs)


def _units(wave: np.ndarray, offset: int, window: int, hop: int, segment: str, vad: VadSettings | None,
           speech: list[tuple[int, int]] | None) -> list[_Unit]:
    """Split a (possibly trimmed) wave into reported spans and the model windows inside them."""
    n = len(wave)
    if segment == "vad":
        return [_Unit(a, b, 1.0, window_starts(b - a, window, hop)) for a, b in speech or []]
    units = []
    for s in window_starts(n, window, hop):
        e = min(n, s + window)
        frac = None if speech is None else speech_fraction(speech, offset + s, offset + e)
        keep = frac is None or (frac > 0 and frac >= vad.min_speech_fraction)
        units.append(_Unit(s, e, frac, [0] if keep else []))
    return units


def predict_files(
    files: Sequence[tuple[Path, str]],
    model: LoadedModel,
    *,
    hop_s: float | None = None,
    batch_size: int = 16,
    trim: bool | None = None,
    trim_db: float | None = None,
    silence_dbfs: float = -60.0,
    vad: VadSettings | bool | Mapping[str, Any] | None = None,
    segment: str = "window",
    progress: bool = False,
    speaker_stats: SpeakerStats | None = None,
    labels: str | Sequence[str] | None = None,
    run: Callable[..., np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Classify files with sliding windows (or speech segments); bad files become error records, never exceptions.

    With voice activity detection (``vad``, :mod:`ser_lightning.inference.vad`), the detector runs
    on the whole decoded file first. ``segment="window"``: a window whose share of speech is below
    ``vad.min_speech_fraction`` (or zero) gets ``status="no speech"`` and no emotion, and the file's
    emotion is the mean over its speech windows only. ``segment="vad"``: the file is cut at the
    detector's speech segments instead of fixed windows (silence trimming is then not needed and
    not applied); each segment is classified (a segment longer than the model's clip by sliding
    windows inside it, a shorter one padded as in training) and reported with its start and end in
    seconds. A file without any speech window or segment, or all-silent, gets ``status="no speech"``.

    Args:
        files: ``[(path or AudioArray, display_name)]`` (see :func:`find_audio`).
        model: The :class:`LoadedModel`.
        hop_s: Hop between windows in seconds, in ``(0, duration_s]``; ``None`` = half the
            model's clip duration.
        batch_size: Windows per forward pass (windows of several files share a batch).
        trim: Trim leading/trailing silence; ``None`` = as the model was trained.
        trim_db: Trimming threshold in dB below the loudest 25 ms frame; ``None`` = the model's.
        silence_dbfs: Files whose peak is below this many dBFS are all-silent (an error without the
            detector, ``no speech`` with it).
        vad: Detector settings: a :class:`~ser_lightning.inference.vad.VadSettings`, a mapping of its
            fields, ``True`` (defaults) or ``None``/``False`` (no detection: every window is classified).
        segment: ``"window"`` (fixed sliding windows) or ``"vad"`` (speech segments; needs ``vad``).
        progress: Show a progress bar (stderr) for more than one file.
        speaker_stats: The speaker's statistics for a model trained with ``data.speaker_norm=true``
            (:func:`speaker_reference_statistics`); every window's pooled hidden states are
            standardised with them before the head. Required by such a model, refused by others.
        labels: Restrict the output to these classes (:func:`~ser_lightning.inference.adaptation.label_subset`:
            a label-set name or emotion names): every window's probabilities of those classes,
            renormalised; records then list only them (in the model's order). ``None``: all classes.
        run: Replaces the model's own ``(batch, lengths)`` → probabilities function (used by
            :func:`predict_set` for its two passes); ``None``: the model's.

    Returns:
        One record per file, in input order: ``file``, ``path``, ``status`` (``ok``/``no speech``/``error``),
        ``error``, ``duration_s`` (the file), ``analysed_s`` (after silence trimming),
        ``source_sample_rate`` (Hz), ``channels``, ``speech_fraction`` (share of the file the detector
        marks as speech; ``None`` without it), ``n_windows``,
        ``label``, ``confidence``, ``probabilities`` (label → mean probability of the classified windows) and
        ``windows`` (``start_s``, ``end_s``, ``status``, ``speech_fraction``, ``label``, ``confidence``,
        ``probabilities``; with ``segment="vad"`` one entry per speech segment).

    Raises:
        ValueError: ``hop_s``, ``batch_size``, ``trim_db``, ``segment`` or a ``vad`` setting out of range;
            ``segment="vad"`` with the detector off; a model whose output width differs from its label count;
            a speaker-normalised model without ``speaker_stats``, or ``speaker_stats`` for a plain model;
            a requested label the model does not have.
        RuntimeError: the model fails on a batch.
    """
    cfg = model.audio_cfg
    keep = list(range(len(model.labels))) if labels is None else label_subset(labels, model.labels, model.source)
    out_labels = [model.labels[i] for i in keep]
    if model.speaker_norm and speaker_stats is None:
        raise ValueError(reference_required(model.source))
    if speaker_stats is not None and not model.speaker_norm:
        raise ValueError(reference_refused(model.source))
    if run is None and speaker_stats is not None:
        def run(batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            return model.run_pooled(standardise(model.embed(batch, lengths), speaker_stats.mean, speaker_stats.sd))
    elif run is None:
        run = model.run
    window = cfg.num_samples
    hop_s, hop = check_hop_s(hop_s, cfg)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    trim = cfg.trim_silence if trim is None else bool(trim)
    trim_db = cfg.trim_db if trim_db is None else float(trim_db)
    if trim_db <= 0:
        raise ValueError(f"trim_db={trim_db} must be positive (dB below the loudest frame)")
    vad_cfg = VadSettings.from_any(vad)
    vad_on = vad_cfg.enabled
    if segment not in SEGMENT_MODES:
        raise ValueError(f"segment={segment!r} is not one of {list(SEGMENT_MODES)}")
    if segment == "vad" and not vad_on:
        raise ValueError("segment=vad cuts files at speech segments and needs the voice activity detector "
                         "(vad.enabled=true)")
    if segment == "vad":
        trim = False
    records: list[dict[str, Any]] = []
    pending: list[_Pending] = []
    queue: list[tuple[_Unit, np.ndarray, int]] = []  # (span, its samples, window index) not yet computed

    def flush(all_: bool) -> None:
        while queue and (all_ or len(queue) >= batch_size):
            chunk, queue[:] = queue[:batch_size], queue[batch_size:]
            batch = np.stack([make_window(seg, u.starts[i], cfg) for u, seg, i in chunk])
            try:
                if model.takes_lengths:  # whole-clip model: pooling ignores a short window's padding
                    lengths = np.asarray([window_length(len(seg), u.starts[i], cfg) for u, seg, i in chunk])
                    probs = np.asarray(run(batch, lengths), dtype=np.float64)
                else:
                    probs = np.asarray(run(batch), dtype=np.float64)
            except Exception as err:  # a model failure is not a per-file problem: stop here
                raise RuntimeError(f"model {model.source} failed on a batch of shape {batch.shape}: {err}") from err
            if probs.shape != (len(chunk), len(model.labels)):
                raise ValueError(f"ckpt_path={model.source}: the model returned shape {probs.shape} for {len(chunk)} windows, "
                                 f"but its card lists {len(model.labels)} labels")
            if labels is not None:
                probs = restrict_probabilities(probs, keep)
            for (u, _, i), row in zip(chunk, probs):
                u.probs[i] = row
        for p in [p for p in pending if p.done()]:
            _finish(records[p.index], p, out_labels, cfg.sample_rate)
            pending.remove(p)

    bar, task = None, None
    if progress and len(files) > 1:  # one file: nothing to follow (and no blank line left on a non-terminal)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=True)
        bar.start()
        task = bar.add_task("files", total=len(files))
    try:
        for path, display in files:
            where = path.name if isinstance(path, AudioArray) else str(Path(path).resolve())
            rec: dict[str, Any] = {"file": display, "path": where, "status": "ok", "error": "",
                                   "duration_s": None, "source_sample_rate": None, "channels": None,
                                   "analysed_s": None, "speech_fraction": None, "n_windows": 0, "label": None,
                                   "confidence": None, "probabilities": None, "windows": []}
            records.append(rec)
            try:
                wave, info = decode_mono(path, cfg.sample_rate, silence_dbfs)
                rec.update(duration_s=round(info["duration_s"], 4), source_sample_rate=info["source_sample_rate"],
                           channels=info["channels"])
                speech = speech_segments(wave, cfg.sample_rate, vad_cfg) if vad_on else None
                if speech is not None:
                    rec["speech_fraction"] = round(speech_fraction(speech, 0, len(wave)), 4)
                offset = 0
                if trim:
                    trimmed = trim_silence(wave, cfg.sample_rate, trim_db)
                    # trim_silence returns a slice (a view) of its input: its offset is where the kept part starts
                    if np.shares_memory(trimmed, wave):
                        offset = (trimmed.ctypes.data - wave.ctypes.data) // wave.itemsize
                    wave = trimmed
                rec["analysed_s"] = round(len(wave) / cfg.sample_rate, 4)
            except SilentAudioError as err:
                if not vad_on:
                    _record_error(rec, err, path)
                else:  # digital silence has no speech: an answer, not a failure
                    rec.update(status=NO_SPEECH, speech_fraction=0.0, duration_s=round(err.info["duration_s"], 4),
                               source_sample_rate=err.info["source_sample_rate"], channels=err.info["channels"],
                               analysed_s=0.0)
            except AudioDecodeError as err:
                _record_error(rec, err, path)
            else:
                units = _units(wave, offset, window, hop, segment, vad_cfg, speech)
                for u in units:
                    u.probs = [None] * len(u.starts)
                p = _Pending(len(records) - 1, wave, units, offset)
                pending.append(p)
                for u in units:
                    seg = wave[u.start : u.end]
                    queue.extend((u, seg, i) for i in range(len(u.starts)))
                flush(all_=False)
            if bar is not None:
                bar.advance(task)
        flush(all_=True)
    finally:
        if bar is not None:
            bar.stop()
    return records


def _record_error(rec: dict[str, Any], err: Exception, path: Any) -> None:
    msg, shown = str(err), path.name if isinstance(path, AudioArray) else str(path)
    rec.update(status="error", error=msg[len(shown) + 2:] if msg.startswith(f"{shown}: ") else msg)
    # the record carries the error (predict.py's table and outputs, the API's Prediction.error or ValueError):
    # logged at DEBUG only, so that it is not reported twice
    log.debug("%s", msg)


def _finish(rec: dict[str, Any], p: _Pending, labels: list[str], sample_rate: int) -> None:
    """Fill a file record from its spans' window probabilities (aggregate = mean of the classified windows)."""
    o = p.offset
    rows = [r for u in p.units for r in u.probs]
    rec["n_windows"] = len(p.units)
    windows = []
    for u in p.units:
        win: dict[str, Any] = {"start_s": round((o + u.start) / sample_rate, 4), "end_s": round((o + u.end) / sample_rate, 4),
                               "status": "ok" if u.probs else NO_SPEECH,
                               "speech_fraction": None if u.speech_fraction is None else round(u.speech_fraction, 4),
                               "label": None, "confidence": None, "probabilities": None}
        if u.probs:
            mean = np.stack(u.probs).mean(axis=0)
            win.update(label=labels[int(mean.argmax())], confidence=float(mean.max()),
                       probabilities={c: float(v) for c, v in zip(labels, mean)})
        windows.append(win)
    rec["windows"] = windows
    if not rows:
        rec["status"] = NO_SPEECH
        return
    mean = np.stack(rows).mean(axis=0)
    rec["label"] = labels[int(mean.argmax())]
    rec["confidence"] = float(mean.max())
    rec["probabilities"] = {c: float(v) for c, v in zip(labels, mean)}
