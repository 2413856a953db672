"""``predict.py``: classify the emotion of any audio file or folder with a trained model.

``python predict.py input=FILE_OR_DIR [ckpt_path=MODEL] [segment=vad] [hop_s=1.5] [output=DIR]``

A model trained with ``data.speaker_norm=true`` also needs ``speaker_reference=[a.wav,b.wav,...]``
(or a folder): recordings of the same speaker whose statistics standardise the input's
embeddings (:func:`~ser_lightning.inference.predictor.speaker_reference_statistics`).

Without ``ckpt_path`` the model shipped with the package (``default``) is used. The task: load the
model, detect speech, classify every file, write ``predictions.json`` / ``.csv`` /
``windows.csv`` and print a table. How files are decoded, windowed and scored, and what the
exit code means: :mod:`ser_lightning.inference.predictor`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ser_lightning.inference.default_model import DEFAULT_NAME
from ser_lightning.inference.predictor import (
    PredictionFailed,
    check_labels,
    find_audio,
    load_model,
    predict_files,
    speaker_reference_statistics,
    write_outputs,
)
from ser_lightning.inference.vad import NO_SPEECH, VadSettings

log = logging.getLogger(__name__)


def print_table(records: list[dict[str, Any]], console: Any = None) -> None:
    """Print one row per file (status, label, confidence, speech fraction, windows, duration, error) with rich."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console(soft_wrap=False)
        if not console.is_terminal:  # a pipe or file: rich would wrap the table at 80 columns
            console = Console(soft_wrap=False, width=200)
    table = Table(title="Predictions", show_lines=False)
    for name, kw in (("file", {"overflow": "fold"}), ("status", {}), ("label", {}), ("confidence", {"justify": "right"}),
                     ("speech", {"justify": "right"}), ("windows", {"justify": "right"}),
                     ("duration (s)", {"justify": "right"}), ("error", {"overflow": "fold"})):
        table.add_column(name, **kw)
    shown = {"ok": "[green]ok[/]", NO_SPEECH: "[yellow]no speech[/]", "error": "[red]error[/]"}
    for r in records:
        ok = r["status"] == "ok"
        speech = r.get("speech_fraction")
        table.add_row(r["file"], shown.get(r["status"], r["status"]), r["label"] or "",
                      f"{r['confidence']:.3f}" if ok else "", f"{100 * speech:.0f} %" if speech is not None else "",
                      str(r["n_windows"]) if r["status"] != "error" else "",
                      f"{r['duration_s']:.2f}" if r["duration_s"] is not None else "", r["error"])
    console.print(table)


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Run ``conf/predict.yaml``: load the model, classify ``cfg.input``, write the outputs.

    Args:
        cfg: ``ckpt_path`` (alias ``ckpt``; ``null`` = ``default``), ``input``, ``output``, ``card``, ``labels``,
            ``hop_s``, ``batch_size``, ``trim_silence``, ``trim_db``, ``silence_dbfs``, ``segment``, ``vad``
            (``enabled``, ``threshold``, ``min_speech_fraction``, ``min_speech_s``, ``min_silence_s``,
            ``speech_pad_s``), ``device``, ``extensions``, ``strict``, ``progress``, ``speaker_reference``
            (recordings of the speaker, for a model trained with ``data.speaker_norm=true``).

    Returns:
        The ``predictions.json`` document.

    Raises:
        FileNotFoundError: missing model, card or input.
        ValueError: bad setting, unusable model, labels mismatch; a ``data.speaker_norm=true`` model
            without ``speaker_reference``, or ``speaker_reference`` with a plain model.
        PredictionFailed: no file answered (classified or ``no speech``), or ``strict`` and some file
            failed (after the outputs are written).
    """
    from ser_lightning.cli.common import checkpoint_setting, quiet_known_warnings

    quiet_known_warnings()
    ckpt_path = checkpoint_setting(cfg, "a train.py .ckpt, or an export.py .onnx / .torchscript.pt", default=DEFAULT_NAME)
    plain = lambda v: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v  # noqa: E731
    files = find_audio(plain(cfg.get("input")), plain(cfg.get("extensions")))
    model = load_model(ckpt_path, str(cfg.get("device") or "cpu"), cfg.get("card"))
    check_labels(plain(cfg.get("labels")), model.labels, model.source)
    vad = VadSettings.from_any(plain(cfg.get("vad")) if cfg.get("vad") is not None else True)
    segment = str(cfg.get("segment") or "window")
    stats = None
    if model.speaker_norm or cfg.get("speaker_reference"):
        reference = find_audio(plain(cfg.get("speaker_reference")), plain(cfg.get("extensions")),
                               setting="speaker_reference") if cfg.get("speaker_reference") else None
        stats = speaker_reference_statistics(
            reference, model, hop_s=cfg.get("hop_s"), trim=cfg.get("trim_silence"), trim_db=cfg.get("trim_db"),
            silence_dbfs=float(cfg.get("silence_dbfs", -60.0)), batch_size=int(cfg.get("batch_size", 16)),
        ) if reference else None
    records = predict_files(
        files, model, hop_s=cfg.get("hop_s"), batch_size=int(cfg.get("batch_size", 16)),
        trim=cfg.get("trim_silence"), trim_db=cfg.get("trim_db"),
        silence_dbfs=float(cfg.get("silence_dbfs", -60.0)), vad=vad, segment=segment,
        progress=bool(cfg.get("progress", True)), speaker_stats=stats,
    )
    a = model.audio_cfg
    hop_s = a.duration_s / 2 if cfg.get("hop_s") is None else float(cfg.hop_s)
    header = {"source": str(Path(model.source).resolve()), "backend": model.backend, "name": model.name,
              "labels": model.labels, "sample_rate": a.sample_rate, "window_s": a.duration_s, "hop_s": hop_s,
              "normalize": a.normalize, "pad_mode": a.pad_mode,
              "trim_silence": a.trim_silence if cfg.get("trim_silence") is None else bool(cfg.trim_silence),
              "silence_dbfs": float(cfg.get("silence_dbfs", -60.0)), "segment": segment, "vad": vad.as_dict(),
              "aggregate": "mean of the speech windows' probabilities" if vad.enabled else "mean of window probabilities",
              "protocol": model.protocol,
              "speaker_reference": {"files": stats.files, "windows": stats.windows} if stats else None}
    out_dir = Path(cfg.get("output") or cfg.paths.output_dir).expanduser()
    paths = write_outputs(records, out_dir, header)
    print_table(records)
    n_err = sum(r["status"] == "error" for r in records)
    n_quiet = sum(r["status"] == NO_SPEECH for r in records)
    print(f"{len(records) - n_err - n_quiet} of {len(records)} files classified, {n_quiet} without speech "
          f"-> {paths['json']}, {paths['csv']}")
    doc = json.loads(paths["json"].read_text())
    if n_err:
        log.warning("%d of %d files could not be classified (status=error in %s)", n_err, len(records), paths["csv"])
    if n_err == len(records):
        raise PredictionFailed(f"none of the {len(records)} input files could be read; see {paths['csv']}")
    if n_err and cfg.get("strict"):
        raise PredictionFailed(f"strict=true: {n_err} of {len(records)} files could not be classified; see {paths['csv']}")
    return doc
