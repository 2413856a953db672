"""The prediction files: ``predictions.json`` (per file, with every window), ``predictions.csv`` (one row per
file) and ``windows.csv`` (one row per window or speech segment); :func:`write_outputs`.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from ser_lightning.inference.vad import (
    NO_SPEECH,
)

log = logging.getLogger(__name__)


def write_outputs(records: list[dict[str, Any]], out_dir: str | Path, header: dict[str, Any]) -> dict[str, Path]:
    """Write ``predictions.json``, ``predictions.csv`` and ``windows.csv``.

    Args:
        records: Output of :func:`predict_files`.
        out_dir: Directory (created).
        header: Model and settings, stored as ``model`` in the JSON; ``labels`` are the output classes (the
            CSV's ``p_<class>`` columns). Records adapted by :func:`predict_set` add ``plain_label`` and
            ``plain_confidence`` columns to ``predictions.csv``.

    Returns:
        ``{"json", "csv", "windows_csv"}`` paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(header["labels"])
    count = {k: sum(r["status"] == k for r in records) for k in ("ok", NO_SPEECH, "error")}
    doc = {"model": header, "summary": {"files": len(records), "ok": count["ok"], "no_speech": count[NO_SPEECH],
                                        "errors": count["error"]},
           "files": records}
    paths = {"json": out / "predictions.json", "csv": out / "predictions.csv", "windows_csv": out / "windows.csv"}
    paths["json"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    cols = ["file", "status", "error", "label", "confidence", "speech_fraction", "n_windows", "duration_s",
            "analysed_s", "source_sample_rate", "channels", "path"]
    adapted = any("plain" in r for r in records)  # predict_set: the unadapted answer beside the adapted one
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols + [f"p_{c}" for c in labels] + (["plain_label", "plain_confidence"] if adapted else []))
        for r in records:
            probs = r["probabilities"] or {}
            plain = r.get("plain") or {}
            w.writerow([_fmt(r.get(c)) for c in cols] + [_fmt(probs.get(c)) for c in labels]
                       + ([_fmt(plain.get("label")), _fmt(plain.get("confidence"))] if adapted else []))
    with open(paths["windows_csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "window", "start_s", "end_s", "status", "speech_fraction", "label", "confidence"]
                   + [f"p_{c}" for c in labels])
        for r in records:
            for i, win in enumerate(r["windows"]):
                probs = win.get("probabilities") or {}
                w.writerow([r["file"], i, win["start_s"], win["end_s"], win.get("status", "ok"),
                            _fmt(win.get("speech_fraction")), _fmt(win["label"]), _fmt(win["confidence"])]
                           + [_fmt(probs.get(c)) for c in labels])
    return paths


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v
