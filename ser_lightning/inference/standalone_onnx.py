#!/usr/bin/env python3
"""Classify audio files with an exported ONNX model, without torch and without ser_lightning.

``export.py`` copies this file beside every ONNX export as ``predict_onnx.py``; the export's folder is
then all a deployment needs, with four packages: ``pip install onnxruntime numpy soundfile soxr``
(``soxr`` only for files that are not at the model's sample rate)::

    python predict_onnx.py model.onnx clip.wav other.flac [--hop-s 3] [--json]

The file imports nothing from ``ser_lightning`` or ``torch`` (tests/test_onnx_encoders.py runs it
where importing torch fails). The ONNX graph holds the feature frontend (log-mel for the encoder
models), the network and the softmax; what it does not hold is done here, in numpy, the way
``predict.py`` does it (:mod:`ser_lightning.inference.predictor`) with voice activity detection
off (``vad.enabled=false``; the detector, Silero VAD, needs torch): decode with soundfile, average
the channels, resample with soxr (HQ) to the model's rate, optionally trim leading and trailing
silence, cut windows of the model's clip length every ``hop_s`` seconds (the last one aligned with
the end of the file), normalise each window (peak or RMS) and pad it at the end to the clip
length. A file's probabilities are the mean of its windows'.

The preprocessing settings come from the model card, ``<name>.card.json`` beside the model or,
without it, the card embedded in the ONNX file (``metadata_props["ser_lightning.model_card"]``).
A whole-clip model (``preprocessing.clip_length == "whole"``: the speech-encoder models, whose
graph takes ``waveform (batch, time)`` and ``lengths (batch,)``) gets each window's valid length,
so the pooling ignores the padding of a short window as in training.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: Metadata key of the model card embedded in the ONNX file (ser_lightning.inference.card.ONNX_CARD_KEY).
CARD_KEY = "ser_lightning.model_card"
#: Files shorter than this are refused (ser_lightning.data.audio.MIN_DURATION_S).
MIN_DURATION_S = 0.025


def read_card(model_path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The model card: ``<name>.card.json`` beside ``<name>.onnx``, else the one embedded in the file.

    Raises:
        ValueError: neither exists.
    """
    beside = model_path.with_name(model_path.name[: -len(".onnx")] + ".card.json") \
        if model_path.name.endswith(".onnx") else None
    if beside is not None and beside.is_file():
        return json.loads(beside.read_text())
    if CARD_KEY in metadata:
        return json.loads(metadata[CARD_KEY])
    raise ValueError(f"{model_path}: no model card ({beside} is missing and the file embeds none)")


def read_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode a file to a mono float32 waveform ``(time,)`` at ``sample_rate`` Hz (soxr HQ resampling).

    Raises:
        ValueError: unreadable, shorter than 25 ms, non-finite or all-silent (below -60 dBFS) audio.
    """
    import soundfile as sf

    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise ValueError(f"{path}: cannot decode audio ({' '.join(str(err).split())[:200]})") from None
    if audio.shape[0] < max(1, int(MIN_DURATION_S * sr)):
        raise ValueError(f"{path}: {audio.shape[0]} samples, shorter than {MIN_DURATION_S * 1000:g} ms")
    if not np.isfinite(audio).all():
        raise ValueError(f"{path}: NaN or infinite samples")
    x = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if sr != sample_rate:
        import soxr

        x = soxr.resample(x, sr, sample_rate, quality="HQ")
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= 0 or 20 * math.log10(peak) < -60.0:
        raise ValueError(f"{path}: all-silent audio (peak below -60 dBFS)")
    return np.ascontiguousarray(x, dtype=np.float32)


def trim_silence(x: np.ndarray, sample_rate: int, trim_db: float = 40.0, frame_s: float = 0.025) -> np.ndarray:
    """Drop leading and trailing 25 ms frames more than ``trim_db`` below the loudest (as in training)."""
    frame = max(1, int(sample_rate * frame_s))
    n = len(x) // frame
    if n < 2:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -trim_db)
    if rms.max() <= 1e-10 or loud.size == 0:
        return x
    return x[loud[0] * frame : min(len(x), (loud[-1] + 1) * frame)]


def normalize(x: np.ndarray, mode: str, target_rms_dbfs: float = -20.0) -> np.ndarray:
    """Scale a window by its peak (``peak``) or to an RMS level (``rms``); ``none`` leaves it."""
    if mode == "peak":
        peak = float(np.max(np.abs(x)))
        return x / peak if peak > 0 else x
    if mode == "rms":
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        return x * (10 ** (target_rms_dbfs / 20) / rms) if rms > 0 else x
    return x


def fix_length(x: np.ndarray, num_samples: int, pad_mode: str = "zero", crop: str = "center") -> np.ndarray:
    """Pad at the end (zeros, reflection or repetition) or crop to exactly ``num_samples``."""
    n = len(x)
    if n > num_samples:
        start = (n - num_samples) // 2 if crop == "center" else 0
        return x[start : start + num_samples]
    if n == num_samples:
        return x
    if pad_mode == "loop":
        return np.resize(x, num_samples)
    if pad_mode == "reflect" and n > 1:
        return np.pad(x, (0, num_samples - n), mode="reflect")
    return np.pad(x, (0, num_samples - n))


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Window starts covering ``n_samples``: ``0, hop, …`` plus one ending at the last sample."""
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


class OnnxEmotionModel:
    """An exported model in ONNX Runtime with its card's preprocessing.

    Args:
        path: The ``.onnx`` file.
        threads: ONNX Runtime intra-op threads (0: its default).

    Raises:
        ValueError: no model card.
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.card = read_card(self.path, dict(self.session.get_modelmeta().custom_metadata_map))
        names = [i.name for i in self.session.get_inputs()]
        self.takes_lengths = names[1:2] == ["lengths"]
        self.labels: list[str] = list(self.card["labels"])
        self.sample_rate = int(self.card["sample_rate"])
        self.num_samples = int(round(float(self.card["duration_s"]) * self.sample_rate))
        self.pre: dict[str, Any] = dict(self.card.get("preprocessing") or {})
        self.whole = self.pre.get("clip_length") == "whole" and self.takes_lengths

    def probabilities(self, waveform: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``(batch, n_classes)`` of preprocessed windows ``(batch, num_samples)``
        (and, for a whole-clip graph, their valid samples ``(batch,)``; ``None``: all of each row)."""
        x = np.ascontiguousarray(waveform, dtype=np.float32)
        feed = {self.session.get_inputs()[0].name: x}
        if self.takes_lengths:
            n = np.full(x.shape[0], x.shape[1]) if lengths is None else lengths
            feed["lengths"] = np.ascontiguousarray(n, dtype=np.int64)
        return self.session.run(None, feed)[0]

    def windows(self, wave: np.ndarray, hop_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The model's inputs for one mono waveform at its rate: ``(windows, num_samples)`` and their valid lengths.

        Raises:
            ValueError: ``hop_s`` outside ``(0, duration_s]``.
        """
        duration_s = self.num_samples / self.sample_rate
        hop_s = duration_s / 2 if hop_s is None else float(hop_s)
        if not 0 < hop_s <= duration_s:
            raise ValueError(f"hop_s={hop_s} must be in (0, {duration_s:g}] seconds (the model's window)")
        if self.pre.get("trim_silence"):
            wave = trim_silence(wave, self.sample_rate, float(self.pre.get("trim_db", 40.0)))
        n, hop = len(wave), max(1, int(round(hop_s * self.sample_rate)))
        starts = window_starts(n, self.num_samples, hop)
        mode, rms = str(self.pre.get("normalize", "peak")), float(self.pre.get("target_rms_dbfs", -20.0))
        batch = np.stack([fix_length(np.ascontiguousarray(normalize(wave[s : s + self.num_samples], mode, rms),
                                                          dtype=np.float32),
                                     self.num_samples, str(self.pre.get("pad_mode", "zero")),
                                     str(self.pre.get("crop", "center"))) for s in starts])
        lengths = np.asarray([max(1, min(self.num_samples, n - s)) if self.whole else self.num_samples for s in starts])
        return batch, lengths

    def predict_file(self, path: str | Path, hop_s: float | None = None, batch_size: int = 16) -> dict[str, Any]:
        """Label and mean window probabilities of one file.

        Returns:
            ``{"file", "label", "confidence", "probabilities" (label -> p), "n_windows"}``.

        Raises:
            ValueError: unreadable or silent audio, or a bad ``hop_s``.
        """
        batch, lengths = self.windows(read_mono(path, self.sample_rate), hop_s)
        probs = np.concatenate([self.probabilities(batch[i:i + batch_size], lengths[i:i + batch_size])
                                for i in range(0, len(batch), batch_size)])
        mean = probs.astype(np.float64).mean(axis=0)
        best = int(np.argmax(mean))
        return {"file": str(path), "label": self.labels[best], "confidence": float(mean[best]),
                "probabilities": {k: float(v) for k, v in zip(self.labels, mean)}, "n_windows": len(batch)}


def main(argv: list[str] | None = None) -> int:
    """Command line: classify files, print one line each (or JSON); exit 1 if any file failed."""
    ap = argparse.ArgumentParser(description="Classify audio files with an exported ONNX emotion model "
                                             "(onnxruntime + numpy + soundfile + soxr; no torch).")
    ap.add_argument("model", type=Path, help="the .onnx file written by export.py")
    ap.add_argument("files", nargs="+", type=Path, help="audio files (any format soundfile reads)")
    ap.add_argument("--hop-s", type=float, default=None, help="seconds between windows (default: half the clip)")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    ap.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = ap.parse_args(argv)
    model = OnnxEmotionModel(args.model, args.threads)
    records, failed = [], 0
    for f in args.files:
        try:
            records.append({"status": "ok", **model.predict_file(f, args.hop_s)})
        except ValueError as err:
            failed += 1
            records.append({"file": str(f), "status": "error", "error": str(err)})
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        for r in records:
            print(f"{r['file']}\t{r['label']}\t{r['confidence']:.3f}" if r["status"] == "ok"
                  else f"{r['file']}\terror\t{r['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
