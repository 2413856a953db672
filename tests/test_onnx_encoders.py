"""The speech-encoder models in ONNX: a dynamic time axis, parity with PyTorch, and the torch-free runner.

Whisper is checked on a tiny random configuration (the export code is the same for tiny.en, base or any
other size: :class:`~ser_lightning.models.encoders.whisper.WhisperEncoderNetwork`), BYOL-S with its
packaged weights, and the shipped default end to end (``export.py``, then ``predict_onnx.py`` where
importing torch fails)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from ser_lightning.inference.export import export_onnx, max_abs_diff, whole_clip_parity_inputs
from ser_lightning.inference.runners import OnnxRunner

for _module in ("onnx", "onnxscript", "onnxruntime"):
    pytest.importorskip(_module, reason='needs the export extra: pip install -e ".[export]"')

TOLERANCE = 1e-4  # export.py's default: largest absolute probability difference to PyTorch
SR = 16000


def _probability_model(encoder, seed: int = 0):
    """Waveform → probabilities around ``encoder`` (the default model's head settings), with a head that
    gives peaked but unsaturated probabilities (so that a wrong frame or a wrong mask moves them) and pooled
    statistics standardised on a few clips."""
    from ser_lightning.features.frontend import RawFrontend
    from ser_lightning.inference.checkpoint import ProbabilityModel
    from ser_lightning.models.encoders.encoder_classifier import EncoderClassifier

    torch.manual_seed(seed)
    clf = EncoderClassifier(encoder, num_classes=8, pool_each_layer=True, layer_combine="concat", head_layers=0,
                            dropout=0.0).eval()
    x = torch.stack([_clip(3 * SR, seed=i) for i in range(4)])
    with torch.no_grad():
        pooled = clf.pooled_states(x, torch.tensor([3 * SR, 2 * SR, SR, 3 * SR])).flatten(1)
        clf.pooled_norm.running_mean.copy_(pooled.mean(0))
        clf.pooled_norm.running_var.copy_(pooled.var(0) + 1e-4)
        for p in clf.head.parameters():  # logits with a spread of about 2: peaked, but no class saturates
            p.normal_(0.0, 2.0 / pooled.shape[1] ** 0.5)
    return ProbabilityModel(RawFrontend(), clf).eval()


def _clip(n: int, seed: int = 0) -> torch.Tensor:
    """A speech-like test clip: a 150 Hz harmonic series with a moving formant-ish envelope and noise, peak 1."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / SR
    f0 = 150 + 30 * torch.sin(2 * torch.pi * 1.5 * t)
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / SR
    x = sum(torch.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * torch.sin(2 * torch.pi * 3 * t + seed))
    x = x + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    return (x / x.abs().max()).float()


def _export(module, path, max_samples):
    return OnnxRunner(export_onnx(module, path, 3 * SR, whole_clips=True, max_samples=max_samples))


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A random Whisper of 1 layer, 32 wide, 80 mels, 1500 positions (30 s), exported: (PyTorch module, runner)."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from ser_lightning.models.encoders.whisper import WhisperEncoderNetwork, _whisper_config

    torch.manual_seed(0)
    encoder = WhisperEncoderNetwork(WhisperEncoder(_whisper_config(32, 1, 2, 64, 80, 1500)))
    module = _probability_model(encoder)
    return module, _export(module, tmp_path_factory.mktemp("whisper") / "w.onnx", encoder.max_samples)


@pytest.fixture(scope="module")
def byol_s(tmp_path_factory):
    """BYOL-S with its packaged weights and a random head, exported: (PyTorch module, runner)."""
    from ser_lightning.models.encoders.byol_s import build_byol_s

    module = _probability_model(build_byol_s(dropout=0.0))
    return module, _export(module, tmp_path_factory.mktemp("byol") / "b.onnx", None)


def _graph_axes(runner: OnnxRunner) -> dict[str, list]:
    return {i.name: list(i.shape) for i in runner.session.get_inputs()}


def _extra_inputs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A batch padded beyond its longest clip (the export reads frames from the shape, eager from the lengths),
    and an odd length."""
    wide = torch.zeros(2, 3 * SR)
    wide[0, :SR], wide[1, : 2 * SR + 77] = _clip(SR, 5), _clip(2 * SR + 77, 6)
    return {"extra_padding": (wide, torch.tensor([SR, 2 * SR + 77])),
            "odd_length": (_clip(12345, 7)[None], torch.tensor([12345]))}


@pytest.mark.parametrize("which", ["tiny_whisper", "byol_s"])
def test_encoder_export_has_a_dynamic_time_axis_and_matches_pytorch(which, request):
    module, runner = request.getfixturevalue(which)
    axes = _graph_axes(runner)
    assert set(axes) == {"waveform", "lengths"} and runner.takes_lengths
    assert all(isinstance(d, str) for d in axes["waveform"]) and isinstance(axes["lengths"][0], str)  # symbolic
    inputs = {**whole_clip_parity_inputs(SR, 3 * SR, durations_s=(1.0, 3.7, 12.0, 30.0)), **_extra_inputs()}
    diff = max_abs_diff(module, runner, inputs)
    assert max(diff.values()) <= TOLERANCE, diff
    with torch.no_grad():  # the probabilities are peaked, so the check can see a wrong frame or mask
        assert float(module(*inputs["3.7s"]).max()) > 0.3


def test_a_padded_batch_in_onnx_equals_each_clip_alone(tiny_whisper):
    _, runner = tiny_whisper
    batch, lengths = whole_clip_parity_inputs(SR, 3 * SR)["padded_batch"]
    together = runner(batch, lengths)
    alone = np.concatenate([runner(batch[i: i + 1, : int(n)], lengths[i: i + 1]) for i, n in enumerate(lengths)])
    assert np.abs(together - alone).max() <= 1e-5
    assert np.abs(together[0] - together[2]).max() > 1e-3  # different clips, different answers


def test_whole_clip_runner_defaults_to_full_lengths(tiny_whisper):
    _, runner = tiny_whisper
    x = _clip(2 * SR, 3)[None].repeat(2, 1)
    assert np.allclose(runner(x), runner(x, torch.tensor([2 * SR, 2 * SR])), atol=0)


def test_the_exported_dft_matches_torch_stft():
    """The export's STFT (a conv1d with a float64-built DFT kernel) against torch.stft, both frontends."""
    from ser_lightning.features.encoder_frontends import (
        ByolLogMel,
        WhisperLogMel,
        dft_kernel,
        stft_power,
    )

    x = _clip(SR + 321, 2)[None]
    for n_fft, hop, win in ((400, 160, torch.hann_window(400)), (1024, 160, torch.hann_window(400))):
        n = x.shape[1] // hop + 1
        ref = stft_power(x, n_fft, hop, win, n)
        got = stft_power(x, n_fft, hop, win, n, dft_kernel(n_fft, win))
        assert got.shape == ref.shape and torch.allclose(got, ref, rtol=1e-4, atol=1e-4 * float(ref.max()))
    for frontend in (WhisperLogMel(), ByolLogMel()):
        eager = frontend(x)[0]
        frontend.shape_polymorphic = True
        assert (frontend(x)[0] - eager).abs().max() < 1e-4


# ---------------------------------------------------------------------------------- the shipped default
@pytest.fixture(scope="module")
def default_onnx(tmp_path_factory):
    """``export.py ckpt_path=default format=onnx``: the output folder and the card."""
    from ser_lightning.cli.export import export

    out = tmp_path_factory.mktemp("default_onnx")
    card = export(OmegaConf.create({"paths": {"output_dir": str(out / "run")}, "ckpt_path": "default", "name": "model",
                                    "format": "onnx", "output": str(out), "tolerance": TOLERANCE, "seed": 0,
                                    "results": None}))
    return out, card


def test_the_shipped_default_exports_to_onnx_with_parity_on_1_to_30_s(default_onnx):
    out, card = default_onnx
    assert card["files"] == {"onnx": "model.onnx", "onnx_runner": "predict_onnx.py"}
    diff = card["parity"]["onnx"]["max_abs_diff"]
    assert {"1s", "3.7s", "6s", "30s", "padded_batch"} <= set(diff) and card["parity"]["passed"]
    assert max(diff.values()) <= TOLERANCE
    assert card["onnx_input"]["max_samples"] == 30 * SR and card["preprocessing"]["clip_length"] == "whole"
    assert _graph_axes(OnnxRunner(out / "model.onnx")).keys() == {"waveform", "lengths"}


_BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, runpy, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchaudio", "ser_lightning"):
                raise ImportError(f"{name} is blocked: this run must not need it")
    sys.meta_path.insert(0, Block())
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def _without_torch(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the repo on the path
    return subprocess.run([sys.executable, "-c", _BLOCK_TORCH, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_shipped_default_runs_in_onnx_runtime_without_torch(default_onnx, tmp_path):
    from ser_lightning.inference.predictor import load_model, predict_files

    out, _ = default_onnx
    probe = tmp_path / "probe.py"
    probe.write_text("import torch\n")
    blocked = _without_torch(probe, cwd=tmp_path)
    assert blocked.returncode != 0 and "torch is blocked" in blocked.stderr  # the harness does block torch
    rng = np.random.default_rng(0)
    stereo = tmp_path / "long_stereo_22k.wav"  # 10 s, 2 channels, 22.05 kHz: downmix, resampling, 3 windows
    t = np.arange(int(10 * 22050)) / 22050
    voice = np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t)) + 0.05 * rng.standard_normal(len(t))
    sf.write(stereo, np.stack([0.5 * voice, 0.3 * voice], axis=1).astype(np.float32), 22050)
    short = tmp_path / "short.flac"  # 2.2 s at 16 kHz: one window shorter than the model's 6 s clip
    sf.write(short, _clip(int(2.2 * SR), 9).numpy() * 0.7, SR)
    r = _without_torch(out / "predict_onnx.py", out / "model.onnx", stereo, short, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = {rec["file"]: rec for rec in json.loads(r.stdout)}
    assert got[str(stereo)]["n_windows"] == 3 and got[str(short)]["n_windows"] == 1
    files = [(stereo, str(stereo)), (short, str(short))]
    for model in (load_model("default"), load_model(out / "model.onnx")):  # PyTorch, and predict.py's ONNX path
        assert model.takes_lengths
        for rec in predict_files(files, model, vad=False):
            mine = got[rec["file"]]
            assert mine["label"] == rec["label"] and rec["n_windows"] == mine["n_windows"]
            assert max(abs(mine["probabilities"][k] - rec["probabilities"][k]) for k in rec["probabilities"]) <= TOLERANCE
