"""``export.py``: a trained checkpoint as one deployable module, waveform in, probabilities out.

``python export.py ckpt_path=outputs/train/<run>/checkpoints/best.ckpt [format=onnx|torchscript|both]``

The task: load the checkpoint, export it (:mod:`ser_lightning.inference.export`), check parity,
write the model cards (:mod:`ser_lightning.inference.card`): ``<name>.card.json`` for programs and
``<name>.card.md`` for people (classes, training data and licence, results, intended use, limitations).

The speech-encoder models (Whisper, BYOL-S) export to ONNX with a dynamic time axis: inputs
``waveform (batch, time)`` and ``lengths (batch,)`` (:func:`~ser_lightning.inference.export.export_onnx`,
whole clips), checked on clips of 1 s, 3.7 s, the training clip length and 30 s and on a padded batch.
Every ONNX export gets ``predict_onnx.py`` beside it
(:mod:`ser_lightning.inference.standalone_onnx`): the preprocessing and windowing of ``predict.py``
in numpy, so the folder runs with onnxruntime + numpy + soundfile + soxr and no torch.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ser_lightning.inference import standalone_onnx
from ser_lightning.inference.card import (
    ONNX_CARD_KEY,
    TS_CARD_FILE,
    model_card,
    model_card_markdown,
    training_summary,
)
from ser_lightning.inference.checkpoint import (
    ProbabilityModel,
    open_checkpoint,
)
from ser_lightning.inference.default_model import resolve_model_path
from ser_lightning.inference.export import (
    export_onnx,
    export_torchscript,
    exports_dynamic_time,
    max_abs_diff,
    parity_inputs,
    whole_clip_input_spec,
    whole_clip_parity_inputs,
)
from ser_lightning.inference.runners import OnnxRunner
from ser_lightning.models.facts import network_facts

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript", "both")


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt_path`` to ONNX and/or TorchScript, check parity, write the model card.

    Args:
        cfg: The composed ``conf/export.yaml``: ``ckpt_path`` (alias ``ckpt``; Lightning checkpoint), ``format``
            (``onnx``/``torchscript``/``both``), ``output`` (directory; ``null`` = the run
            directory), ``name`` (file stem), ``opset``, ``tolerance`` (largest allowed absolute
            probability difference), ``seed`` (parity noise), ``results`` (JSON file of cross-validation
            results for the Markdown card, see :func:`~ser_lightning.inference.card.model_card_markdown`;
            ``null`` = a placeholder).

    Returns:
        The model card (also written to ``<output>/<name>.card.json``; the Markdown card to
        ``<output>/<name>.card.md``).

    Raises:
        ValueError: unknown ``format``, non-positive ``tolerance``, a bad checkpoint or results file, a
            checkpoint trained with ``data.speaker_norm=true`` (it needs a speaker reference), or a
            parity difference above ``tolerance`` (after the files and the cards are written).
        FileNotFoundError: the checkpoint or the results file does not exist.
    """
    from ser_lightning.cli.common import checkpoint_setting, quiet_known_warnings

    quiet_known_warnings()
    ckpt_path = checkpoint_setting(cfg)
    fmt = str(cfg.get("format", "both"))
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not one of {list(FORMATS)}")
    tolerance = float(cfg.get("tolerance", 1e-4))
    if not tolerance > 0:
        raise ValueError(f"tolerance={tolerance} must be a positive absolute probability difference")
    out_dir = Path(cfg.get("output") or cfg.paths.output_dir).expanduser()
    name = str(cfg.get("name") or "model")
    source = resolve_model_path(ckpt_path)
    results = _read_results(cfg.get("results"))
    classifier, audio_cfg, dm_hp = open_checkpoint(source)  # the file read once
    if dm_hp.get("speaker_norm"):
        raise ValueError(f"ckpt_path={source} was trained with data.speaker_norm=true: an exported waveform-to-"
                         "probability model cannot carry a speaker's statistics; predict with the checkpoint and "
                         "speaker_reference=[...] (predict.py or the Python API) instead")
    module = ProbabilityModel.from_classifier(classifier)
    n = audio_cfg.num_samples
    card = model_card(classifier, audio_cfg, source)
    encoder = getattr(classifier.network, "encoder", None)
    whole_clips = network_facts(classifier.network).whole_clips  # a speech-encoder model
    max_samples = getattr(encoder, "max_samples", None)
    if whole_clips and exports_dynamic_time(encoder) and fmt in ("onnx", "both"):
        card["onnx_input"] = whole_clip_input_spec(audio_cfg.sample_rate, max_samples)
    try:
        card["training_data"] = training_summary(dm_hp)
    except ValueError as err:  # a checkpoint without datamodule settings still exports; its card says so
        log.warning("%s; the model card names no training data", err)
    run_metrics = source.parent.parent / "metrics.json"  # train.py's run directory: <run>/checkpoints/<name>.ckpt
    if run_metrics.is_file():
        m = json.loads(run_metrics.read_text())
        card["test_metrics"] = {k: m.get(k) for k in ("split", "n", "ua", "wa", "macro_f1")}
    card_json = json.dumps(card, indent=2)
    inputs = parity_inputs(n, audio_cfg.sample_rate, int(cfg.get("seed", 0)))
    card["files"], card["parity"] = {}, {"tolerance": tolerance, "inputs": {
        "random": "4 clips of Gaussian noise, sigma 0.3, clipped to [-1, 1]",
        "tone": "1 clip, 220 Hz + 1 kHz, 3 Hz amplitude modulation, peak 1"}}
    failures = []
    if whole_clips and not exports_dynamic_time(encoder) and fmt in ("onnx", "both"):
        # an encoder whose forward reads frame counts from tensor values cannot be traced with a dynamic time axis
        if fmt == "onnx":
            raise ValueError(f"ckpt_path={source}: {classifier.hparams['model'].get('name')} ({type(encoder).__name__}) "
                             "does not export to ONNX yet (only Whisper and BYOL-S encoders do); use format=torchscript")
        log.warning("%s (%s) does not export to ONNX yet; exporting TorchScript only",
                    classifier.hparams["model"].get("name"), type(encoder).__name__)
        fmt = "torchscript"
    if fmt in ("onnx", "both"):
        import onnxruntime

        path = export_onnx(module, out_dir / f"{name}.onnx", n, cfg.get("opset"), {ONNX_CARD_KEY: card_json},
                           whole_clips=whole_clips, max_samples=max_samples)
        card["files"]["onnx"] = path.name
        # the torch-free runner (onnxruntime + numpy + soundfile + soxr) beside the model
        runner = out_dir / "predict_onnx.py"
        shutil.copyfile(standalone_onnx.__file__, runner)
        card["files"]["onnx_runner"] = runner.name
        card["versions"].update(onnxruntime=onnxruntime.__version__)
        onnx_inputs: dict = dict(inputs)
        if whole_clips:  # the dynamic time axis: clips of several lengths and a padded batch
            onnx_inputs.update(whole_clip_parity_inputs(audio_cfg.sample_rate, n, max_samples=max_samples,
                                                        seed=int(cfg.get("seed", 0))))
            card["parity"]["inputs"].update({k: f"1 clip of {v[0].shape[1]} samples" for k, v in onnx_inputs.items()
                                             if k not in inputs and k != "padded_batch"})
            card["parity"]["inputs"]["padded_batch"] = "3 clips of 1 s, 2.5 s and the clip length, zero-padded, with lengths"
        diff = max_abs_diff(module, OnnxRunner(path), onnx_inputs)
        card["parity"]["onnx"] = {"max_abs_diff": diff, "passed": max(diff.values()) <= tolerance}
        log.info("ONNX %s: max |p_onnx - p_torch| = %s", path, diff)
    if fmt in ("torchscript", "both"):
        path = export_torchscript(module, out_dir / f"{name}.torchscript.pt", n, {TS_CARD_FILE: card_json})
        card["files"]["torchscript"] = path.name
        loaded = torch.jit.load(str(path), map_location="cpu").eval()
        diff = max_abs_diff(module, loaded, inputs)
        card["parity"]["torchscript"] = {"max_abs_diff": diff, "passed": max(diff.values()) <= tolerance}
        log.info("TorchScript %s: max |p_ts - p_torch| = %s", path, diff)
    for kind in ("onnx", "torchscript"):
        if kind in card["parity"] and not card["parity"][kind]["passed"]:
            failures.append(f"{kind} {card['parity'][kind]['max_abs_diff']}")
    card["parity"]["passed"] = not failures
    card_path = out_dir / f"{name}.card.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    text_card = out_dir / f"{name}.card.md"
    text_card.write_text(model_card_markdown(card, results), encoding="utf-8")
    for kind, diff in ((k, v) for k, v in card["parity"].items() if isinstance(v, dict) and "max_abs_diff" in v):
        print(f"{kind} parity: max |p_{kind} - p_torch| = {max(diff['max_abs_diff'].values()):.3g} "
              f"(tolerance {tolerance:g}) -> {out_dir / card['files'][kind]}")
    print(f"model cards: {card_path} (for programs), {text_card} (for people)")
    if failures:
        raise ValueError(f"export parity check failed above tolerance={tolerance:g}: {'; '.join(failures)} "
                         f"(files and card with parity.passed=false kept in {out_dir})")
    return card


def _read_results(path: Any) -> dict[str, Any] | None:
    """The cross-validation results file (``results=PATH``) for the Markdown card, or ``None``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a JSON object with a ``folds`` list.
    """
    if not path:
        return None
    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"results={file}: no such results file")
    try:
        doc = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"results={file}: not JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("folds", []), list):
        raise ValueError(f"results={file}: expected a JSON object with a 'folds' list")
    return doc


if __name__ == "__main__":  # python -m ser_lightning.cli.export = ser-export
    from ser_lightning.cli.main import run

    run("export")
