"""``export.py``: a trained checkpoint as one deployable module, waveform in, probabilities out.

``python export.py ckpt_path=outputs/train/<run>/checkpoints/best.ckpt [format=onnx|torchscript|both]``

The exported module is :class:`ProbabilityModel`: the checkpoint's feature frontend (log-mel /
MFCC via torchaudio, or the raw waveform), its network and a softmax, so a deployment needs no
Python feature code. Input ``waveform``: float32 ``(batch, num_samples)`` at the model's sample
rate and clip length (after the checkpoint's preprocessing: mono, resampled, normalised, padded
or cropped — :mod:`ser_lightning.cli.predict` does this for any file); output ``probabilities``:
float32 ``(batch, n_classes)``. The batch axis is dynamic in both formats.

- ONNX: ``torch.onnx.export(dynamo=True)`` (needs ``onnx`` and ``onnxscript``; install
  ``pip install -e ".[export]"``). torchaudio's STFT exports as ONNX ``STFT`` (opset ≥ 17), so no
  hand-written DFT is needed; the two operations that do not export (MFCC Δ/ΔΔ's grouped conv,
  report 001/002's ``AdaptiveMaxPool2d``) are swapped for equivalents on a copy of the model
  (:func:`make_exportable`). The model card is also embedded as ONNX metadata
  (``ser_lightning.model_card``).
- TorchScript: ``torch.jit.trace`` (the card is embedded as the extra file ``model_card.json``).

Next to the exported files, ``<name>.card.json`` (the *model card*) records the labels, sample
rate, clip length, the preprocessing to apply, the model and source checkpoint, the export date
and the parity check: the largest absolute difference between the exported module's and
PyTorch's probabilities on random-noise and two-tone inputs. Above ``tolerance`` the export fails
(exit 1) after writing the files and the card (``parity.passed: false``), so the mismatch can be
inspected.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from ser_lightning.data.audio import AudioConfig
from ser_lightning.data.datamodule import audio_config_from_hparams

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript", "both")
CARD_VERSION = 1
ONNX_CARD_KEY = "ser_lightning.model_card"
TS_CARD_FILE = "model_card.json"
# Datamodule settings that shape the audio a checkpoint was trained on (see cli/eval.py).
# ONNX keeps weights inside the file below this size (protobuf's limit is 2 GiB).
_ONNX_INLINE_LIMIT_BYTES = 1_800_000_000


class ProbabilityModel(nn.Module):
    """Frontend + network + softmax of a :class:`~ser_lightning.modules.classifier.SERClassifier`.

    Args:
        frontend: The classifier's feature frontend (waveform → features).
        network: The classifier's network (features → logits).

    Shapes:
        ``(batch, num_samples)`` float32 waveform → ``(batch, n_classes)`` float32 probabilities
        (rows sum to 1).
    """

    def __init__(self, frontend: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.network = network

    @classmethod
    def from_classifier(cls, classifier: nn.Module) -> ProbabilityModel:
        """Wrap a classifier's ``frontend`` and ``network`` (shared, not copied), in eval mode."""
        return cls(classifier.frontend, classifier.network).eval()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(batch, n_classes)`` from waveforms ``(batch, num_samples)``."""
        return torch.softmax(self.network(self.frontend(waveform)).float(), dim=-1)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, AudioConfig]:
    """Load a ``train.py`` checkpoint: the classifier (eval mode) and its audio preprocessing.

    Args:
        path: Lightning checkpoint of a ``SERClassifier`` written by ``train.py``.
        map_location: Device the weights are loaded onto.

    Returns:
        ``(classifier, audio_cfg)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the checkpoint holds no datamodule settings, or its classifier's clip length
            (``num_samples``) differs from the datamodule's ``sample_rate × duration_s``.
    """
    from ser_lightning.checkpoints import load_classifier
    from ser_lightning.cli.common import stored_datamodule_hparams

    path = Path(path).expanduser()
    dm_hp = stored_datamodule_hparams(path)
    audio_cfg = audio_config_from_hparams(dm_hp)
    model = load_classifier(path, map_location=map_location)
    num_samples = model.hparams.get("num_samples")
    if num_samples and int(num_samples) != audio_cfg.num_samples:
        raise ValueError(f"ckpt_path={path}: model num_samples={num_samples} differs from the datamodule's "
                         f"{audio_cfg.num_samples} (sample_rate {audio_cfg.sample_rate} Hz × {audio_cfg.duration_s} s)")
    return model, audio_cfg


def parity_inputs(num_samples: int, sample_rate: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs of the parity check, at the model's clip length.

    Args:
        num_samples: Clip length in samples.
        sample_rate: Sample rate in Hz.
        seed: Seed of the noise.

    Returns:
        ``{"random": (4, num_samples), "tone": (1, num_samples)}`` float32: Gaussian noise
        (σ = 0.3, clipped to [-1, 1]; batch 4 also checks the dynamic batch axis) and a peak-1
        two-tone clip (220 Hz + 1 kHz with a 3 Hz amplitude modulation).
    """
    gen = torch.Generator().manual_seed(seed)
    noise = (0.3 * torch.randn(4, num_samples, generator=gen)).clamp(-1.0, 1.0)
    t = torch.arange(num_samples, dtype=torch.float64) / sample_rate
    tone = (0.6 * torch.sin(2 * math.pi * 220 * t) + 0.4 * torch.sin(2 * math.pi * 1000 * t)) * (
        0.75 + 0.25 * torch.sin(2 * math.pi * 3 * t))
    tone = tone / tone.abs().max()
    return {"random": noise.float(), "tone": tone.float()[None]}


def max_abs_diff(reference: Callable[[torch.Tensor], Any], candidate: Callable[[torch.Tensor], Any],
                 inputs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Largest absolute difference of two models' outputs on each input.

    Args:
        reference: Callable on a ``(batch, num_samples)`` tensor (PyTorch eager).
        candidate: Same interface (TorchScript module, ONNX Runtime wrapper).
        inputs: Named ``(batch, num_samples)`` inputs.

    Returns:
        ``{name: max |reference(x) − candidate(x)|}``.
    """
    out = {}
    with torch.inference_mode():
        for name, x in inputs.items():
            a = np.asarray(reference(x), dtype=np.float64)
            b = np.asarray(candidate(x), dtype=np.float64)
            out[name] = float(np.max(np.abs(a - b)))
    return out


class StaticAdaptiveMaxPool2d(nn.Module):
    """``nn.AdaptiveMaxPool2d`` as fixed slices, for ONNX (which has no adaptive max pool).

    Same bins as PyTorch: output cell ``i`` of an axis of length ``L`` pooled to ``n`` covers
    ``[floor(i·L/n), ceil((i+1)·L/n))``. The spatial size is read when the module is exported, so
    the exported graph is only valid for that input size (the exporters fix it: batch is the only
    dynamic axis). An evenly divisible size becomes one ``max_pool2d``.

    Args:
        output_size: ``(H_out, W_out)``, an int for both, ``None`` entries keeping the input size.

    Shapes:
        ``(..., H, W)`` → ``(..., H_out, W_out)``.
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Max over each adaptive bin (see the class docstring)."""
        h, w = int(x.shape[-2]), int(x.shape[-1])
        oh, ow = (o if o is not None else d for o, d in zip(self.output_size, (h, w)))
        if h % oh == 0 and w % ow == 0:
            return nn.functional.max_pool2d(x, kernel_size=(h // oh, w // ow))
        rows = []
        for i in range(oh):
            h0, h1 = (i * h) // oh, -((-(i + 1) * h) // oh)
            cells = [x[..., h0:h1, (j * w) // ow: -((-(j + 1) * w) // ow)].amax(dim=(-2, -1)) for j in range(ow)]
            rows.append(torch.stack(cells, dim=-1))
        return torch.stack(rows, dim=-2)


def make_exportable(module: nn.Module) -> nn.Module:
    """A copy of ``module`` that the ONNX exporter can translate; ``module`` is left unchanged.

    Replaces every ``nn.AdaptiveMaxPool2d`` (without indices; ONNX has no adaptive max pool —
    report 001/002's networks use one to reach a fixed grid) with :class:`StaticAdaptiveMaxPool2d`,
    and every ``torchaudio.transforms.ComputeDeltas`` (MFCC Δ/ΔΔ: a grouped conv with a dynamic
    group count) with :class:`ser_lightning.features.exportable.ExportableDeltas`. The parity check
    of :func:`export` proves the copy computes the same probabilities.

    Args:
        module: Any module.

    Returns:
        The module itself when nothing needs replacing, else a modified deep copy.
    """
    import copy

    import torchaudio

    from ser_lightning.features.exportable import ExportableDeltas

    def replacement(m: nn.Module) -> nn.Module | None:
        if isinstance(m, nn.AdaptiveMaxPool2d) and not m.return_indices:
            return StaticAdaptiveMaxPool2d(m.output_size)
        if isinstance(m, torchaudio.transforms.ComputeDeltas):
            return ExportableDeltas.from_torchaudio(m)
        return None

    targets = [n for n, m in module.named_modules() if n and replacement(m) is not None]
    if not targets:
        return module
    module = copy.deepcopy(module)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, replacement(getattr(parent, child)))
    return module


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        b.numel() * b.element_size() for b in module.buffers())


def export_onnx(module: nn.Module, path: str | Path, num_samples: int, opset: int | None = None,
                metadata: dict[str, str] | None = None) -> Path:
    """Export a waveform → probabilities module to ONNX with a dynamic batch axis.

    Uses the dynamo exporter (``torch.onnx.export(dynamo=True)``; needs ``onnx`` and
    ``onnxscript``) on :func:`make_exportable`'s copy of the module. Weights stay inside the ``.onnx`` file unless they exceed ~1.8 GB (then
    ``<path>.data`` holds them).

    Args:
        module: Model taking ``(batch, num_samples)`` float32 and returning ``(batch, n_classes)``.
        path: Output ``.onnx`` file.
        num_samples: Clip length in samples (fixed axis 1).
        opset: ONNX opset; ``None`` = the exporter's default (≥ 18).
        metadata: String key/values stored as ONNX ``metadata_props``.

    Returns:
        The written path.

    Raises:
        ImportError: ``onnx``/``onnxscript`` missing (with the install command).
    """
    try:
        import onnxscript  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError('ONNX export needs onnx and onnxscript: pip install -e ".[export]"') from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = make_exportable(module.eval())
    example = torch.zeros(2, num_samples)
    quiet = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [q.level for q in quiet]
    for q in quiet:  # the exporter's optimiser passes log every rewrite at INFO
        q.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # torch.export's pytree deprecations
            program = torch.onnx.export(
                module, (example,), None, dynamo=True, verbose=False, opset_version=opset,
                input_names=["waveform"], output_names=["probabilities"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            )
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    for key, value in (metadata or {}).items():
        program.model.metadata_props[key] = value
    program.save(str(path), external_data=_param_bytes(module) > _ONNX_INLINE_LIMIT_BYTES)
    return path


def export_torchscript(module: nn.Module, path: str | Path, num_samples: int,
                       extra_files: dict[str, str] | None = None) -> Path:
    """Trace a waveform → probabilities module to TorchScript (``torch.jit.trace``).

    Args:
        module: Model taking ``(batch, num_samples)`` float32.
        path: Output file (``.pt``); load with ``torch.jit.load``.
        num_samples: Clip length in samples of the example input (batch 2).
        extra_files: Name → text stored in the archive (``torch.jit.load(..., _extra_files=...)``).

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    example = torch.zeros(2, num_samples)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        traced = torch.jit.trace(module, example, check_trace=False)
    torch.jit.save(traced, str(path), _extra_files=extra_files or {})
    return path


class OnnxRunner:
    """ONNX Runtime session with the exported module's interface (for parity checks and predict).

    Args:
        path: ``.onnx`` file.
        threads: ``intra_op_num_threads`` (0 = ONNX Runtime's default).
        providers: Execution providers (default CPU).

    Raises:
        ImportError: ``onnxruntime`` missing (with the install command).
    """

    def __init__(self, path: str | Path, threads: int = 0, providers: list[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError('running ONNX models needs onnxruntime: pip install -e ".[export]"') from err
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=opts,
                                            providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def metadata(self) -> dict[str, str]:
        """The model's ONNX ``metadata_props``."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, waveform: torch.Tensor | np.ndarray) -> np.ndarray:
        """Probabilities ``(batch, n_classes)`` from ``(batch, num_samples)`` float32."""
        x = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else waveform
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_card(classifier: nn.Module, audio_cfg: AudioConfig, source: str | Path | None = None) -> dict[str, Any]:
    """Model card of an exported classifier (everything needed to feed it and read its output).

    Args:
        classifier: The ``SERClassifier`` (its ``hparams`` give model, features, class names).
        audio_cfg: The audio preprocessing it was trained with.
        source: Source checkpoint path (recorded with its SHA-256).

    Returns:
        A JSON-serialisable dict: ``labels``, ``sample_rate`` (Hz), ``duration_s``,
        ``num_samples``, ``input``/``output`` specs, ``preprocessing`` (mono downmix, soxr
        resampling, ``normalize``, ``target_rms_dbfs``, ``pad_mode``, ``crop``, silence trimming),
        ``model``/``features`` settings, ``source_checkpoint``, ``exported_at`` (UTC ISO 8601),
        library versions; ``files`` and ``parity`` are filled in by :func:`export`.
    """
    hp = classifier.hparams
    labels = list(hp["class_names"])
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "model_name": dict(hp["model"]).get("name"),
        "labels": labels,
        "n_classes": len(labels),
        "sample_rate": audio_cfg.sample_rate,
        "duration_s": audio_cfg.duration_s,
        "num_samples": audio_cfg.num_samples,
        "input": {"name": "waveform", "dtype": "float32", "shape": ["batch", audio_cfg.num_samples],
                  "units": f"mono samples at {audio_cfg.sample_rate} Hz, after preprocessing"},
        "output": {"name": "probabilities", "dtype": "float32", "shape": ["batch", len(labels)],
                   "units": "softmax class probabilities in label order"},
        "preprocessing": {"downmix": "mean of channels", "resample": "soxr HQ",
                          "normalize": audio_cfg.normalize, "target_rms_dbfs": audio_cfg.target_rms_dbfs,
                          "trim_silence": audio_cfg.trim_silence, "trim_db": audio_cfg.trim_db,
                          "pad_mode": audio_cfg.pad_mode, "crop": audio_cfg.crop},
        "model": dict(hp["model"]),
        "features": dict(hp["features"]),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__},
    }
    if source is not None:
        src = Path(source).expanduser().resolve()
        card["source_checkpoint"] = {"path": str(src), "sha256": _sha256(src) if src.is_file() else None}
    return card


def audio_config_from_card(card: dict[str, Any]) -> AudioConfig:
    """The preprocessing recorded in a model card (see :func:`model_card`).

    Raises:
        ValueError: the card lacks ``sample_rate``/``duration_s``/``labels``.
    """
    missing = [k for k in ("sample_rate", "duration_s", "labels") if k not in card]
    if missing:
        raise ValueError(f"model card is missing {missing}")
    pre = card.get("preprocessing") or {}
    keys = ("normalize", "target_rms_dbfs", "trim_silence", "trim_db", "pad_mode", "crop")
    return AudioConfig(sample_rate=int(card["sample_rate"]), duration_s=float(card["duration_s"]),
                       **{k: pre[k] for k in keys if k in pre})


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt_path`` to ONNX and/or TorchScript, check parity, write the model card.

    Args:
        cfg: The composed ``conf/export.yaml``: ``ckpt_path`` (alias ``ckpt``; Lightning checkpoint), ``format``
            (``onnx``/``torchscript``/``both``), ``output`` (directory; ``null`` = the run
            directory), ``name`` (file stem), ``opset``, ``tolerance`` (largest allowed absolute
            probability difference), ``seed`` (parity noise).

    Returns:
        The model card (also written to ``<output>/<name>.card.json``).

    Raises:
        ValueError: unknown ``format``, non-positive ``tolerance``, a bad checkpoint, or a parity
            difference above ``tolerance`` (after the files and the card are written).
        FileNotFoundError: the checkpoint does not exist.
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
    source = Path(ckpt_path).expanduser()
    classifier, audio_cfg = load_checkpoint(source)
    module = ProbabilityModel.from_classifier(classifier)
    n = audio_cfg.num_samples
    card = model_card(classifier, audio_cfg, source)
    card_json = json.dumps(card, indent=2)
    inputs = parity_inputs(n, audio_cfg.sample_rate, int(cfg.get("seed", 0)))
    card["files"], card["parity"] = {}, {"tolerance": tolerance, "inputs": {
        "random": "4 clips of Gaussian noise, sigma 0.3, clipped to [-1, 1]",
        "tone": "1 clip, 220 Hz + 1 kHz, 3 Hz amplitude modulation, peak 1"}}
    failures = []
    if fmt in ("onnx", "both"):
        import onnxruntime

        path = export_onnx(module, out_dir / f"{name}.onnx", n, cfg.get("opset"), {ONNX_CARD_KEY: card_json})
        card["files"]["onnx"] = path.name
        card["versions"].update(onnxruntime=onnxruntime.__version__)
        diff = max_abs_diff(module, OnnxRunner(path), inputs)
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
    for kind, diff in ((k, v) for k, v in card["parity"].items() if isinstance(v, dict) and "max_abs_diff" in v):
        print(f"{kind} parity: max |p_{kind} - p_torch| = {max(diff['max_abs_diff'].values()):.3g} "
              f"(tolerance {tolerance:g}) -> {out_dir / card['files'][kind]}")
    print(f"model card: {card_path}")
    if failures:
        raise ValueError(f"export parity check failed above tolerance={tolerance:g}: {'; '.join(failures)} "
                         f"(files and card with parity.passed=false kept in {out_dir})")
    return card
