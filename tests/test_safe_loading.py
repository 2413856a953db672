"""A checkpoint from a stranger cannot run code: every load is weights-only, and a pickle that names code is
refused with one line, before anything in it runs."""

from __future__ import annotations

import os

import pytest
import torch

from ser_lightning.inference.checkpoint import load_classifier
from ser_lightning.inference.checkpoint import read_checkpoint as load_checkpoint
from tests.conftest import run_script


class _Payload:
    """Unpickling this runs ``touch <marker>`` (what an attacker's checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def malicious_ckpt(trained_members, tmp_path):
    marker = tmp_path / "PWNED"
    ckpt = torch.load(trained_members[0], map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["payload"] = _Payload(marker)
    path = tmp_path / "malicious.ckpt"
    torch.save(ckpt, path)
    # The file really carries a working payload: an unsafe load would run it.
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_load_checkpoint_refuses_code_and_runs_nothing(malicious_ckpt):
    path, marker = malicious_ckpt
    with pytest.raises(ValueError, match=r"refusing to load: the checkpoint's pickle names code") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="refusing to load"):
        load_classifier(path)
    assert not marker.exists()


def test_a_clean_checkpoint_loads(trained_members):
    ckpt = load_checkpoint(trained_members[0])
    assert "state_dict" in ckpt and "datamodule_hyper_parameters" in ckpt
    model = load_classifier(trained_members[0])
    assert not model.training and len(model.class_names) == 8


@pytest.mark.parametrize("script", ["predict.py", "eval.py", "export.py"])
def test_the_cli_refuses_a_malicious_checkpoint(script, malicious_ckpt, tiny_ravdess, tmp_path):
    path, marker = malicious_ckpt
    extra = {"predict.py": [f"input={tiny_ravdess / 'ravdess' / 'Actor_01'}"],
             "eval.py": [f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}"],
             "export.py": [f"output={tmp_path / 'export'}"]}[script]
    r = run_script(script, f"ckpt_path={path}", *extra, cwd=tmp_path / "run")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "refusing to load" in last and str(path) in last
    assert not marker.exists()


@pytest.mark.parametrize("which", ["trained", "shipped head-only"])
def test_a_checkpoint_is_read_once_per_load(which, trained_members, monkeypatch):
    """Loading reads the file once: the classifier (``load_classifier``), and the classifier with its audio and data
    settings (``open_checkpoint``, what ``export.py`` uses) each deserialise it one time, and the rebuilt model
    equals Lightning's ``load_from_checkpoint`` of the same file tensor by tensor (also for the shipped head-only
    checkpoint, whose frozen encoder comes from the installed weights)."""
    from ser_lightning.inference.checkpoint import open_checkpoint
    from ser_lightning.inference.default_model import default_model_path
    from ser_lightning.modules.classifier import SERClassifier

    path = trained_members[0] if which == "trained" else default_model_path()
    reference = SERClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    reads = []
    real_load = torch.load

    def counting_load(*args, **kwargs):
        reads.append(args[0] if args else kwargs.get("f"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    model = load_classifier(path)
    assert len(reads) == 1
    model_too, audio_cfg, dm_hp = open_checkpoint(path)
    assert len(reads) == 2 and dm_hp["sample_rate"] == audio_cfg.sample_rate
    for loaded in (model, model_too):
        assert loaded.hparams == reference.hparams and not loaded.training
        got, want = loaded.state_dict(), reference.state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
