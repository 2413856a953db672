"""Export a classifier as one deployable module, waveform in, probabilities out, and check parity.

``python export.py ckpt=outputs/train/<run>/checkpoints/best.ckpt [format=onnx|torchscript|both]``
runs these functions (:mod:`ser_lightning.cli.export`).

The exported module is :class:`~ser_lightning.inference.checkpoint.ProbabilityModel`: the checkpoint's feature frontend (log-mel /
MFCC via torchaudio, or the raw waveform), its network and a softmax, so a deployment needs no
Python feature code. Input ``waveform``: float32 ``(batch, num_samples)`` at the model's sample
rate and clip length (after the checkpoint's preprocessing: mono, resampled, normalised, padded
or cropped — :mod:`ser_lightning.inference.predictor` does this for any file); output ``probabilities``:
float32 ``(batch, n_classes)``. The batch axis is dynamic in both formats. The speech-encoder
models (Whisper, BYOL-S: whole clips pooled over their own length) export to ONNX with a dynamic
time axis too and a second input, ``lengths`` ``(batch,)`` int64, the valid samples of each row
(:func:`export_onnx` with ``whole_clips=True``; parity on clips of 1–30 s,
:func:`whole_clip_parity_inputs`); their TorchScript export keeps the fixed window.

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

import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

# ONNX keeps weights inside the file below this size (protobuf's limit is 2 GiB).
_ONNX_INLINE_LIMIT_BYTES = 1_800_000_000


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


def whole_clip_parity_inputs(sample_rate: int, num_samples: int, durations_s: tuple[float, ...] = (1.0, 3.7, 30.0),
                             max_samples: int | None = None, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Inputs of the parity check of a whole-clip (dynamic-length) export: clips of several lengths.

    Each clip is the two-tone signal of :func:`parity_inputs` plus Gaussian noise (σ = 0.05), peak 1.

    Args:
        sample_rate: Sample rate in Hz.
        num_samples: The model's training clip length in samples (one clip of exactly this length is included).
        durations_s: Further single-clip durations in seconds (each becomes ``"<d>s"``).
        max_samples: Longest input the export accepts (longer durations are capped to it).
        seed: Seed of the noise.

    Returns:
        ``{name: (waveform (batch, time), lengths (batch,) int64)}``: one clip per duration (its
        length = its samples), plus ``"padded_batch"``: clips of 1 s, 2.5 s and the training clip
        length zero-padded into one ``(3, num_samples)`` batch with their lengths (checks that the
        padding is masked as in PyTorch).
    """
    gen = torch.Generator().manual_seed(seed)
    cap = max_samples or max(num_samples, int(max(durations_s) * sample_rate))

    def signal(n: int) -> torch.Tensor:
        t = torch.arange(n, dtype=torch.float64) / sample_rate
        x = 0.6 * torch.sin(2 * math.pi * 220 * t) + 0.4 * torch.sin(2 * math.pi * 1000 * t) * (
            0.75 + 0.25 * torch.sin(2 * math.pi * 3 * t)) + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
        return (x / x.abs().max()).float()

    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, n in [(f"{num_samples / sample_rate:g}s", num_samples)] + [
            (f"{d:g}s", int(round(d * sample_rate))) for d in durations_s]:
        n = min(n, cap)
        out[name] = (signal(n)[None], torch.tensor([n]))
    lengths = [min(sample_rate, num_samples), min(int(2.5 * sample_rate), num_samples), min(num_samples, cap)]
    batch = torch.zeros(3, max(lengths))
    for i, n in enumerate(lengths):
        batch[i, :n] = signal(n)
    out["padded_batch"] = (batch, torch.tensor(lengths))
    return out


def whole_clip_input_spec(sample_rate: int, max_samples: int | None, min_samples: int = 400) -> dict[str, Any]:
    """The model card's description of a whole-clip ONNX graph's inputs (see :func:`export_onnx`).

    Args:
        sample_rate: Sample rate in Hz.
        max_samples: Longest input in samples (``None``: unbounded).
        min_samples: Shortest input in samples.

    Returns:
        ``{"waveform": ..., "lengths": ..., "min_samples", "max_samples"}`` (JSON-serialisable).
    """
    return {
        "waveform": {"dtype": "float32", "shape": ["batch", "time"],
                     "units": f"mono samples at {sample_rate} Hz, after preprocessing; any length in "
                              f"{min_samples}..{max_samples or 'unbounded'} samples"},
        "lengths": {"dtype": "int64", "shape": ["batch"],
                    "units": "valid samples of each row (the rest is zero padding, ignored by the pooling); "
                             "a single clip passes its own length"},
        "min_samples": min_samples, "max_samples": max_samples,
    }


def max_abs_diff(reference: Callable[..., Any], candidate: Callable[..., Any],
                 inputs: dict[str, torch.Tensor | tuple[torch.Tensor, ...]]) -> dict[str, float]:
    """Largest absolute difference of two models' outputs on each input.

    Args:
        reference: Callable on a ``(batch, num_samples)`` tensor (PyTorch eager).
        candidate: Same interface (TorchScript module, ONNX Runtime wrapper).
        inputs: Named ``(batch, num_samples)`` inputs, or tuples of arguments (e.g. waveform and lengths).

    Returns:
        ``{name: max |reference(x) − candidate(x)|}``.
    """
    out = {}
    with torch.inference_mode():
        for name, x in inputs.items():
            args = x if isinstance(x, tuple) else (x,)
            a = np.asarray(reference(*args), dtype=np.float64)
            b = np.asarray(candidate(*args), dtype=np.float64)
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


def exports_dynamic_time(encoder: nn.Module | None) -> bool:
    """Whether a speech encoder exports with a dynamic time axis: it has the ``shape_polymorphic`` switch
    (Whisper, BYOL-S; see :func:`make_exportable`). The ``transformers`` wav2vec2-style encoders do not yet."""
    return encoder is not None and hasattr(encoder, "shape_polymorphic")


def make_exportable(module: nn.Module) -> nn.Module:
    """A copy of ``module`` that the ONNX exporter can translate; ``module`` is left unchanged.

    Replaces every ``nn.AdaptiveMaxPool2d`` (without indices; ONNX has no adaptive max pool —
    report 001/002's networks use one to reach a fixed grid) with :class:`StaticAdaptiveMaxPool2d`,
    and every ``torchaudio.transforms.ComputeDeltas`` (MFCC Δ/ΔΔ: a grouped conv with a dynamic
    group count) with :class:`ser_lightning.features.exportable.ExportableDeltas`; and sets
    ``shape_polymorphic = True`` on every submodule that has the switch (the speech encoders and
    their log-mel frontends: frame counts from the input's shape, not from the lengths' values,
    :mod:`ser_lightning.features.encoder_frontends`), so the time axis can stay dynamic. The parity
    check of :func:`export` proves the copy computes the same probabilities.

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
    switches = [n for n, m in module.named_modules() if hasattr(m, "shape_polymorphic")]
    if not targets and not switches:
        return module
    module = copy.deepcopy(module)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, replacement(getattr(parent, child)))
    for name in switches:
        module.get_submodule(name).shape_polymorphic = True
    return module


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        b.numel() * b.element_size() for b in module.buffers())


def export_onnx(module: nn.Module, path: str | Path, num_samples: int, opset: int | None = None,
                metadata: dict[str, str] | None = None, whole_clips: bool = False,
                min_samples: int = 400, max_samples: int | None = None) -> Path:
    """Export a waveform → probabilities module to ONNX with a dynamic batch axis (and time axis).

    Uses the dynamo exporter (``torch.onnx.export(dynamo=True)``; needs ``onnx`` and
    ``onnxscript``) on :func:`make_exportable`'s copy of the module. Weights stay inside the ``.onnx`` file unless they exceed ~1.8 GB (then
    ``<path>.data`` holds them).

    Two interfaces:

    * fixed clips (``whole_clips=False``, every spectrogram network): input ``waveform``
      ``(batch, num_samples)``, the time axis fixed at ``num_samples``;
    * whole clips (``whole_clips=True``, the speech-encoder models): inputs ``waveform``
      ``(batch, time)`` with a dynamic ``time`` in ``min_samples … max_samples`` and ``lengths``
      ``(batch,)`` int64, the valid samples of each row (the rest is padding that the pooling
      ignores, as in training; a single clip passes its own length). The copy's encoder reads its
      frame counts from the input's shape (:func:`make_exportable`), so ``torch.export`` traces one
      graph for every length.

    Args:
        module: Model taking ``(batch, num_samples)`` float32 (and, for whole clips, lengths
            ``(batch,)``) and returning ``(batch, n_classes)``.
        path: Output ``.onnx`` file.
        num_samples: Clip length in samples (fixed axis 1; with ``whole_clips`` the example length).
        opset: ONNX opset; ``None`` = the exporter's default (≥ 18).
        metadata: String key/values stored as ONNX ``metadata_props``.
        whole_clips: Export the whole-clip interface (dynamic time axis + ``lengths``).
        min_samples: Shortest input the graph accepts (whole clips; default 25 ms at 16 kHz).
        max_samples: Longest input the graph accepts (whole clips; ``None``: unbounded; Whisper: 30 s).

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
    batch = torch.export.Dim("batch", min=1)
    if whole_clips:
        time_axis = torch.export.Dim("time", min=int(min_samples), max=max_samples)
        n = int(num_samples) if max_samples is None else min(int(num_samples), int(max_samples))
        example: tuple[torch.Tensor, ...] = (torch.zeros(2, n), torch.tensor([n, max(int(min_samples), n // 2)]))
        names, shapes = ["waveform", "lengths"], ({0: batch, 1: time_axis}, {0: batch})
    else:
        example, names, shapes = (torch.zeros(2, num_samples),), ["waveform"], ({0: batch},)
    quiet = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [q.level for q in quiet]
    for q in quiet:  # the exporter's optimiser passes log every rewrite at INFO
        q.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # torch.export's pytree deprecations
            warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used")  # batch, named twice
            program = torch.onnx.export(
                module, example, None, dynamo=True, verbose=False, opset_version=opset,
                input_names=names, output_names=["probabilities"], dynamic_shapes=shapes,
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


