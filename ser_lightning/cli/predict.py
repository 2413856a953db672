"""``predict.py``: classify the emotion of any audio file or folder with a trained model.

``python predict.py input=FILE_OR_DIR [ckpt_path=MODEL] [segment=vad] [hop_s=1.5] [output=DIR]``

A model trained with ``data.speaker_norm=true`` also needs ``speaker_reference=[a.wav,b.wav,...]``
(or a folder): recordings of the same speaker whose statistics standardise the input's
embeddings (:func:`~ser_lightning.inference.predictor.speaker_reference_statistics`).

``labels=[angry,happy,neutral,sad]`` (or a label set: ``quad4``) restricts the output to those classes:
every window's probabilities of them, renormalised; a class the model does not have is refused. (Until
issue 21 ``labels=`` only checked that the model's classes were exactly those: a command that passed
that check gives the same answers now, since restricting to all of a model's classes changes nothing.)

``adapt=set`` and ``adapt_prior=em`` adapt to the input set without labels (transductive, named so in
``predictions.json``; each file keeps its ``plain`` answer): the head's input standardised with the
statistics of all the input's windows, and the class prior re-estimated by EM over the files'
probabilities (:func:`~ser_lightning.inference.predictor.predict_set`). Below ``adapt_min_clips`` files
(e.g. a single clip) a one-line note, and the model's training statistics and prior are used.

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
    default_hop_s,
    find_audio,
    load_model,
    predict_files,  # noqa: F401  (re-exported: the library behind predict.py)
    predict_set,
    speaker_reference_statistics,
    write_outputs,
)
from ser_lightning.inference.vad import NO_SPEECH, VadSettings

log = logging.getLogger(__name__)


def print_table(records: list[dict[str, Any]], console: Any = None, adaptation: str | None = None,
                segment: str = "window") -> None:
    """Print one row per file (status, label, confidence, speech fraction, windows, duration) with rich, then one
    line per failed file (``error: <file>: <reason>``, never folded into a narrow column); records adapted to
    the set (:func:`~ser_lightning.inference.predictor.predict_set`) also show their plain label, and the title
    names the ``adaptation``. With ``segment="vad"`` the count column is headed ``segments``."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if console is None:
        console = Console(soft_wrap=False)
        if not console.is_terminal:  # a pipe or file: rich would wrap the table at 80 columns
            console = Console(soft_wrap=False, width=200)
    adapted = any("plain" in r for r in records)
    table = Table(title="Predictions" + (f" ({adaptation})" if adapted and adaptation else ""), show_lines=False)
    columns = [("file", {"overflow": "fold"}), ("status", {"no_wrap": True}), ("label", {"no_wrap": True}),
               ("confidence", {"justify": "right", "no_wrap": True})]
    columns += [("plain label", {"no_wrap": True})] if adapted else []
    columns += [("speech", {"justify": "right", "no_wrap": True}),
                ("segments" if segment == "vad" else "windows", {"justify": "right", "no_wrap": True}),
                ("duration (s)", {"justify": "right", "no_wrap": True})]
    for name, kw in columns:
        table.add_column(name, **kw)
    shown = {"ok": "[green]ok[/]", NO_SPEECH: "[yellow]no speech[/]", "error": "[red]error[/]"}
    for r in records:
        ok = r["status"] == "ok"
        speech = r.get("speech_fraction")
        cells = [escape(r["file"]), shown.get(r["status"], r["status"]), r["label"] or "",
                 f"{r['confidence']:.3f}" if ok else ""]
        cells += [(r.get("plain") or {}).get("label") or ""] if adapted else []
        cells += [f"{100 * speech:.0f} %" if speech is not None else "", str(r["n_windows"]) if r["status"] != "error" else "",
                  f"{r['duration_s']:.2f}" if r["duration_s"] is not None else ""]
        table.add_row(*cells)
    console.print(table)
    for r in records:
        if r["status"] == "error":
            console.print(f"[red]error[/]: {escape(r['file'])}: {escape(r['error'])}", soft_wrap=True, highlight=False)


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Run ``conf/predict.yaml``: load the model, classify ``cfg.input``, write the outputs.

    Args:
        cfg: ``ckpt_path`` (alias ``ckpt``; ``null`` = ``default``), ``input``, ``output``, ``card``, ``labels``
            (classes to restrict the output to), ``adapt`` (``none``/``set``), ``adapt_prior`` (``none``/``em``),
            ``adapt_min_clips``, ``hop_s``, ``batch_size``, ``trim_silence``, ``trim_db``, ``silence_dbfs``,
            ``segment``, ``vad`` (``enabled``, ``threshold``, ``min_speech_fraction``, ``min_speech_s``,
            ``min_silence_s``, ``speech_pad_s``), ``device``, ``extensions``, ``strict``, ``progress``,
            ``speaker_reference`` (recordings of the speaker, for a model trained with ``data.speaker_norm=true``).

    Returns:
        The ``predictions.json`` document.

    Raises:
        FileNotFoundError: missing model, card or input.
        ValueError: bad setting, unusable model, a requested label the model does not have; a
            ``data.speaker_norm=true`` model without ``speaker_reference``, or ``speaker_reference`` with a
            plain model; an adaptation the model cannot take (``adapt=set`` with an exported model).
        PredictionFailed: no file answered (classified or ``no speech``), or ``strict`` and some file
            failed (after the outputs are written).
    """
    from ser_lightning.cli.common import checkpoint_setting, quiet_known_warnings

    quiet_known_warnings()
    ckpt_path = checkpoint_setting(cfg, "a train.py .ckpt, or an export.py .onnx / .torchscript.pt", default=DEFAULT_NAME)
    plain = lambda v: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v  # noqa: E731
    files = find_audio(plain(cfg.get("input")), plain(cfg.get("extensions")))
    model = load_model(ckpt_path, str(cfg.get("device") or "cpu"), cfg.get("card"))
    labels = plain(cfg.get("labels"))
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
    records, adaptation = predict_set(
        files, model, labels=labels, adapt=cfg.get("adapt") or "none", adapt_prior=cfg.get("adapt_prior") or "none",
        adapt_min_clips=cfg.get("adapt_min_clips", 20), hop_s=cfg.get("hop_s"), batch_size=int(cfg.get("batch_size", 16)),
        trim=cfg.get("trim_silence"), trim_db=cfg.get("trim_db"),
        silence_dbfs=float(cfg.get("silence_dbfs", -60.0)), vad=vad, segment=segment,
        progress=bool(cfg.get("progress", True)), speaker_stats=stats,
    )
    a = model.audio_cfg
    hop_s = default_hop_s(a.duration_s) if cfg.get("hop_s") is None else float(cfg.hop_s)
    header = {"source": str(Path(model.source).resolve()), "backend": model.backend, "name": model.name,
              "labels": adaptation["labels"], "model_labels": model.labels, "adaptation": adaptation,
              "sample_rate": a.sample_rate, "window_s": a.duration_s, "hop_s": hop_s,
              "normalize": a.normalize, "pad_mode": a.pad_mode,
              "trim_silence": a.trim_silence if cfg.get("trim_silence") is None else bool(cfg.trim_silence),
              "silence_dbfs": float(cfg.get("silence_dbfs", -60.0)), "segment": segment, "vad": vad.as_dict(),
              "aggregate": "mean of the speech windows' probabilities" if vad.enabled else "mean of window probabilities",
              "protocol": model.protocol,
              "speaker_reference": {"files": stats.files, "windows": stats.windows} if stats else None}
    out_dir = Path(cfg.get("output") or cfg.paths.output_dir).expanduser()
    paths = write_outputs(records, out_dir, header)
    print_table(records, adaptation=adaptation["adaptation"], segment=segment)
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


if __name__ == "__main__":  # python -m ser_lightning.cli.predict = ser-predict
    from ser_lightning.cli.main import run

    run("predict")
