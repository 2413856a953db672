"""model=ensemble: member checkpoints combined by mean or validation-fitted weights."""

from __future__ import annotations

import json

import pytest
import torch

from ser_lightning.inference.ensemble import CheckpointEnsemble
from tests.conftest import run_script


def test_mean_ensemble_averages_member_probabilities(trained_members):
    ens = CheckpointEnsemble(num_classes=8, members=[str(p) for p in trained_members])
    wave = torch.randn(3, 16000)
    probs = ens.member_probs(wave)
    assert probs.shape == (2, 3, 8)
    assert torch.allclose(torch.softmax(ens(wave), -1), probs.mean(0), atol=1e-5)
    ens.train()
    assert not any(m.training for m in ens.members)  # members stay in eval mode


def test_fit_weights_prefers_the_better_member(trained_members):
    ens = CheckpointEnsemble(num_classes=8, members=[str(p) for p in trained_members])
    target = torch.randint(0, 8, (200,))
    good = torch.nn.functional.one_hot(target, 8).float() * 0.9 + 0.1 / 8
    bad = torch.full((200, 8), 1 / 8)
    weights = ens.fit_weights(torch.stack([bad, good]), target)
    assert weights[1] > 0.9 and sum(weights) == pytest.approx(1.0)


def test_bad_members_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="model.members is empty"):
        CheckpointEnsemble(members=[])
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        CheckpointEnsemble(members=[str(tmp_path / "missing.ckpt")])


def test_eval_py_runs_a_learned_ensemble(trained_members, tiny_ravdess, tmp_path):
    members = ",".join(str(p) for p in trained_members)
    run = tmp_path / "ens"
    r = run_script("eval.py", "model=ensemble", f"model.members=[{members}]", "model.combine=learned",
                   f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}", cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["combine"] == "learned" and len(metrics["member_weights"]) == 2
    assert sum(metrics["member_weights"]) == pytest.approx(1.0, abs=1e-5)
    assert metrics["n"] == sum(map(sum, metrics["confusion_matrix"])) > 0
