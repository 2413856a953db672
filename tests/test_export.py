"""Export and the latency benchmark (item 5) on tiny checkpoints trained on generated audio."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from ser_lightning.cli.export import export
from ser_lightning.inference.checkpoint import ProbabilityModel, load_checkpoint
from ser_lightning.inference.export import StaticAdaptiveMaxPool2d, make_exportable, max_abs_diff
from ser_lightning.inference.runners import OnnxRunner
from tests.conftest import run_script


def _need_onnx() -> None:
    """Skip unless the ``export`` extra (onnx, onnxscript, onnxruntime) is installed."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module, reason='needs the export extra: pip install -e ".[export]"')

TOLERANCE = 1e-4  # largest absolute probability difference accepted between PyTorch and an export


_EXPORTED: dict[Path, Path] = {}


@pytest.fixture(scope="session")
def exported(trained_members, tmp_path_factory) -> Path:
    """``export.py format=both`` of the log-mel checkpoint (through the CLI): the output directory.

    test_predict.py imports this fixture, which makes it a second fixture definition; the
    module-level cache keeps it to one export per session.
    """
    _need_onnx()
    if trained_members[0] not in _EXPORTED:
        out = tmp_path_factory.mktemp("export")
        r = run_script("export.py", f"ckpt_path={trained_members[0]}", "format=both", f"output={out}", cwd=out / "run")
        assert r.returncode == 0, r.stderr[-3000:]
        assert "onnx parity" in r.stdout and "torchscript parity" in r.stdout
        _EXPORTED[trained_members[0]] = out
    return _EXPORTED[trained_members[0]]


def _check_inputs(num_samples: int, sample_rate: int) -> dict[str, torch.Tensor]:
    """Inputs other than the export's own parity inputs: batch 3 of noise + a chirp."""
    gen = torch.Generator().manual_seed(123)
    t = torch.arange(num_samples) / sample_rate
    chirp = torch.sin(2 * math.pi * (100 + 1500 * t) * t)
    return {"noise": 0.5 * torch.rand(3, num_samples, generator=gen) - 0.25, "chirp": chirp[None]}


def test_export_writes_models_and_card(exported, trained_members):
    clf, audio = load_checkpoint(trained_members[0])
    card = json.loads((exported / "model.card.json").read_text())
    assert (exported / card["files"]["onnx"]).is_file() and (exported / card["files"]["torchscript"]).is_file()
    assert card["labels"] == clf.class_names and card["n_classes"] == len(clf.class_names)
    assert card["sample_rate"] == audio.sample_rate == 16000
    assert card["duration_s"] == audio.duration_s and card["num_samples"] == audio.num_samples
    assert card["preprocessing"]["normalize"] == audio.normalize
    assert card["model_name"] == "homebrew_cnn" and card["features"]["name"] == "logmel"
    assert card["source_checkpoint"]["path"] == str(trained_members[0].resolve())
    assert len(card["source_checkpoint"]["sha256"]) == 64 and card["exported_at"]
    assert card["parity"]["passed"] is True
    for kind in ("onnx", "torchscript"):
        diffs = card["parity"][kind]["max_abs_diff"]
        assert set(diffs) == {"random", "tone"} and max(diffs.values()) <= TOLERANCE


def test_onnx_parity_on_new_inputs(exported, trained_members):
    clf, audio = load_checkpoint(trained_members[0])
    ref = ProbabilityModel.from_classifier(clf)
    runner = OnnxRunner(exported / "model.onnx", threads=1)
    inputs = _check_inputs(audio.num_samples, audio.sample_rate)
    assert max(max_abs_diff(ref, runner, inputs).values()) <= TOLERANCE
    probs = runner(inputs["noise"])
    assert probs.shape == (3, len(clf.class_names))  # dynamic batch
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert json.loads(runner.metadata()["ser_lightning.model_card"])["labels"] == clf.class_names


def test_torchscript_parity_on_new_inputs(exported, trained_members):
    clf, audio = load_checkpoint(trained_members[0])
    ref = ProbabilityModel.from_classifier(clf)
    extra = {"model_card.json": ""}
    ts = torch.jit.load(str(exported / "model.torchscript.pt"), _extra_files=extra)
    inputs = _check_inputs(audio.num_samples, audio.sample_rate)
    assert max(max_abs_diff(ref, ts, inputs).values()) <= TOLERANCE
    assert json.loads(extra["model_card.json"])["labels"] == clf.class_names


@pytest.mark.parametrize(("size", "grid"), [((16, 47), (9, 23)), ((7, 13), (4, 2)), ((3, 5), (4, 7)),
                                             ((8, 12), (4, 3)), ((10, 6), (3, None))])
def test_static_adaptive_max_pool_matches_pytorch(size, grid):
    x = torch.randn(2, 3, *size)
    np.testing.assert_array_equal(StaticAdaptiveMaxPool2d(grid)(x).numpy(), nn.AdaptiveMaxPool2d(grid)(x).numpy())


@pytest.mark.parametrize(("shape", "win_length"), [((2, 1, 13, 40), 5), ((3, 20, 7), 7), ((1, 2, 4, 2), 3)])
def test_exportable_deltas_match_torchaudio(shape, win_length):
    import torchaudio

    from ser_lightning.features.exportable import ExportableDeltas

    x = torch.randn(*shape)
    ref = torchaudio.transforms.ComputeDeltas(win_length)
    torch.testing.assert_close(ExportableDeltas.from_torchaudio(ref)(x), ref(x), atol=1e-5, rtol=1e-5)


def test_make_exportable_replaces_adaptive_max_pool_on_a_copy():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.AdaptiveMaxPool2d((4, 2))), nn.Flatten())
    copy = make_exportable(net)
    assert isinstance(net[1][0], nn.AdaptiveMaxPool2d) and isinstance(copy[1][0], StaticAdaptiveMaxPool2d)
    x = torch.randn(2, 1, 17, 29)
    torch.testing.assert_close(copy(x), net(x))
    plain = nn.Sequential(nn.Conv2d(1, 2, 3))
    assert make_exportable(plain) is plain


def _cfg(**kw):
    return OmegaConf.create({"paths": {"output_dir": "unused"}, "format": "both", "tolerance": TOLERANCE,
                             "name": "model", "seed": 0, "opset": None, **kw})


def test_export_fails_loudly_above_tolerance(trained_members, tmp_path, monkeypatch):
    import ser_lightning.cli.export as ex

    monkeypatch.setattr(ex, "max_abs_diff", lambda ref, cand, inputs: {"random": 0.5, "tone": 0.0})
    with pytest.raises(ValueError, match="parity check failed above tolerance"):
        export(_cfg(ckpt=str(trained_members[0]), format="torchscript", output=str(tmp_path)))
    card = json.loads((tmp_path / "model.card.json").read_text())
    assert card["parity"]["passed"] is False and card["parity"]["torchscript"]["passed"] is False


@pytest.mark.parametrize(("kw", "match"), [({"format": "tflite"}, "format='tflite'"),
                                           ({"tolerance": 0.0}, "tolerance=0.0"),
                                           ({"ckpt": None}, "ckpt_path=PATH"),
                                           ({"ckpt": "/nonexistent/best.ckpt"}, "no such checkpoint")])
def test_export_bad_settings(kw, match, tmp_path):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        export(_cfg(**{"ckpt": "x.ckpt", "output": str(tmp_path), **kw}))


def test_latency_smoke(tmp_path):
    _need_onnx()
    from benchmarks import latency

    out = tmp_path / "latency.json"
    threads = torch.get_num_threads()
    # MFCC + Δ + ΔΔ features: the ONNX export also goes through ExportableDeltas (parity checked below)
    assert latency.main(["--smoke", "--out", str(out), "features=mfcc"]) == 0
    assert torch.get_num_threads() == threads  # restored
    rec = json.loads(out.read_text())
    rows = rec["results"]
    assert {(r["model"], r["backend"], r["threads"]) for r in rows} == {
        (m, b, t) for m in latency.SMOKE_MODELS for b in ("pytorch", "onnxruntime") for t in (1, 2)}
    for r in rows:
        assert r["runs"] == 3 and 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]
        if r["backend"] == "onnxruntime":
            assert r["max_abs_diff_vs_pytorch"] <= TOLERANCE
    assert rec["machine"] and "load_avg_1min_start" in rec and rec["overrides"] == ["features=mfcc"]
    assert all(r["input_shape"][0] == 3 for r in rows)  # static, Δ, ΔΔ channels
