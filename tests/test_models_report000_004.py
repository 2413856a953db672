"""Report 000 networks (CNN, BiLSTM, Transformer, learned ensemble) and report 004's attention FCNs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ser_lightning.models import build_model
from ser_lightning.models.attention_fcn import AttentionFCN, AttentionFCN2d
from ser_lightning.models.cnn import ResidualCNN
from ser_lightning.models.ensembles import JointEnsemble
from ser_lightning.models.sequence import AttentiveBiLSTM, _frame_sequence

NAMES = [
    "residual_cnn",
    "attentive_bilstm",
    "cls_transformer",
    "joint_ensemble",
    "attention_fcn",
    "attention_fcn_2d",
]
CONF = Path(__file__).resolve().parents[1] / "ser_lightning" / "conf" / "model"


pytestmark = pytest.mark.usefixtures("one_thread")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.flatten(1)
    return -(p * p.clamp_min(1e-12).log()).sum(1)


@pytest.mark.parametrize("shape", [(1, 1, 128, 94), (2, 1, 40, 32)], ids=["1x128x94", "40x32"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_backward(name, shape):
    torch.manual_seed(0)
    net = build_model(name, in_channels=1, num_classes=8)
    x = torch.randn(*shape, requires_grad=True)
    out = net(x)
    assert out.shape == (shape[0], 8) and torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad is not None
    assert all(p.grad is not None for p in net.parameters()), "every parameter takes part in the forward pass"


@pytest.mark.parametrize("name", NAMES)
def test_config_builds_the_registered_model(name):
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    assert cfg.pop("name") == name
    net = build_model(name, in_channels=3, num_classes=5, **cfg)
    assert net(torch.randn(2, 3, 32, 40)).shape == (2, 5)


def test_architectures_follow_the_reports():
    cnn = ResidualCNN()
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert cnn.head[2].out_features == 128 and cnn.head[4].p == 0.3
    assert not any(b.shortcut for b in ResidualCNN(residual=False).features)
    lstm = AttentiveBiLSTM()
    assert lstm.lstm.num_layers == 3 and lstm.lstm.bidirectional and lstm.lstm.hidden_size == 256
    fcn = AttentionFCN()
    convs = [m for m in fcn.encoder if isinstance(m, torch.nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(5, 11, 4), (10, 5, 1), (20, 3, 1), (30, 3, 1)]
    pools = [m for m in fcn.encoder if isinstance(m, torch.nn.MaxPool1d)]
    assert len(pools) == 3 and all(p.kernel_size == 3 and p.stride == 2 for p in pools)
    assert convs[0].in_channels == 1  # report 004: mel axis averaged, one input channel
    stacked = AttentionFCN(in_channels=2, frequency_reduction="stack", n_feats=64)
    assert stacked.encoder[0].in_channels == 128
    assert stacked(torch.randn(2, 2, 40, 60)).shape == (2, 8)


def test_frame_sequence_is_identity_at_n_feats_and_pools_other_sizes():
    x = torch.randn(2, 3, 16, 7)
    seq = _frame_sequence(x, 16)
    assert seq.shape == (2, 7, 48) and torch.equal(seq[1, 4], x[1, :, :, 4].reshape(-1))
    assert _frame_sequence(torch.randn(2, 3, 64, 7), 16).shape == (2, 7, 48)
    assert _frame_sequence(torch.randn(2, 1, 8, 7), 16).shape == (2, 7, 16)


# ------------------------------------------------------------------------------------ ensemble
def test_ensemble_weights_are_softmax_and_sum_to_one():
    ens = JointEnsemble(in_channels=1, num_classes=4)
    w = ens.member_weights()
    assert list(w) == ["cnn", "bilstm", "transformer"]
    assert sum(w.values()) == pytest.approx(1.0) and all(v == pytest.approx(1 / 3) for v in w.values())
    with torch.no_grad():
        ens.weight_logits.copy_(torch.tensor([2.0, 0.0, -1.0]))
    w = ens.member_weights()
    assert sum(w.values()) == pytest.approx(1.0) and w["cnn"] > w["bilstm"] > w["transformer"]


def test_ensemble_probs_is_the_log_of_the_weighted_mixture_and_trains_the_weights():
    torch.manual_seed(0)
    ens = JointEnsemble(in_channels=1, num_classes=4, members=["cnn", "transformer"])
    with torch.no_grad():
        ens.weight_logits.copy_(torch.tensor([0.5, -0.5]))
    ens.eval()
    x = torch.randn(2, 1, 32, 40)
    out = ens(x)
    w = torch.softmax(torch.tensor([0.5, -0.5]), 0)
    mix = w[0] * ens.members["cnn"](x).softmax(-1) + w[1] * ens.members["transformer"](x).softmax(-1)
    assert torch.allclose(out.exp(), mix, atol=1e-6)
    assert torch.allclose(out.softmax(-1), mix, atol=1e-6)  # valid logits for cross-entropy
    ens.train()
    torch.nn.functional.cross_entropy(ens(x), torch.tensor([0, 3])).backward()
    assert ens.weight_logits.grad is not None and ens.weight_logits.grad.abs().sum() > 0


@pytest.mark.parametrize("member", ["cnn", "bilstm", "transformer"])
def test_one_member_ensemble_is_its_member(member):
    torch.manual_seed(0)
    x = torch.randn(2, 1, 24, 30)
    probs = JointEnsemble(in_channels=1, num_classes=5, members=[member]).eval()
    assert list(probs.members) == [member] and probs.member_weights() == {member: 1.0}
    assert torch.allclose(probs(x), probs.members[member](x).log_softmax(-1), atol=1e-6)
    logits = JointEnsemble(in_channels=1, num_classes=5, members=[member], combine="logits").eval()
    assert torch.allclose(logits(x), logits.members[member](x), atol=1e-6)


def test_ensemble_ablation_drops_members():
    ens = build_model("joint_ensemble", in_channels=1, num_classes=7, members=["cnn", "bilstm"])
    assert list(ens.members) == ["cnn", "bilstm"] and list(ens.member_weights()) == ["cnn", "bilstm"]
    assert ens.weight_logits.shape == (2,)


# ----------------------------------------------------------------------------------- attention
@pytest.mark.parametrize(
    "cls, shape, alpha_dims",
    [(AttentionFCN, (3, 1, 64, 94), 2), (AttentionFCN2d, (3, 1, 64, 94), 3), (AttentiveBiLSTM, (3, 1, 64, 50), 2)],
)
def test_attention_weights_sum_to_one(cls, shape, alpha_dims):
    torch.manual_seed(0)
    net = cls(in_channels=1, num_classes=4).eval()
    logits, alpha = net.forward_with_attention(torch.randn(*shape))
    assert logits.shape == (3, 4) and alpha.dim() == alpha_dims and alpha.shape[0] == 3
    assert (alpha >= 0).all()
    assert torch.allclose(alpha.flatten(1).sum(1), torch.ones(3), atol=1e-5)
    if cls is AttentiveBiLSTM:
        assert alpha.shape == (3, 50)  # one weight per frame


@pytest.mark.parametrize("cls", [AttentionFCN, AttentionFCN2d])
def test_attention_lambda_controls_sharpness(cls):
    x = torch.randn(2, 1, 64, 188)
    entropies = []
    for lam in (0.3, 0.8, 3.0):
        torch.manual_seed(0)  # same weights for every λ
        net = cls(num_classes=4, attention_lambda=lam).eval()
        assert net.attention.attention_lambda == lam
        entropies.append(_entropy(net.forward_with_attention(x)[1]))
    assert (entropies[0] > entropies[1]).all() and (entropies[1] > entropies[2]).all()  # larger λ: sharper


# ------------------------------------------------------------------------------ bad settings
@pytest.mark.parametrize(
    "name, kw, message",
    [
        ("joint_ensemble", {"members": ["cnn", "gru"]}, r"model\.members=.*'gru'.*\['bilstm', 'cnn', 'transformer'\]"),
        ("joint_ensemble", {"members": []}, r"model\.members"),
        ("joint_ensemble", {"members": ["cnn", "cnn"]}, r"model\.members"),
        ("joint_ensemble", {"members": "cnn"}, r"model\.members"),
        ("joint_ensemble", {"combine": "mean"}, r"model\.combine='mean'.*\['probs', 'logits'\]"),
        ("residual_cnn", {"widths": []}, r"model\.widths"),
        ("residual_cnn", {"dropout": 1.0}, r"model\.dropout"),
        ("attentive_bilstm", {"hidden_size": 0}, r"model\.hidden_size"),
        ("attentive_bilstm", {"lstm_dropout": -0.1}, r"model\.lstm_dropout"),
        ("cls_transformer", {"d_model": 100, "num_heads": 8}, r"model\.d_model=100.*model\.num_heads=8"),
        ("attention_fcn", {"attention_lambda": 0.0}, r"model\.attention_lambda"),
        ("attention_fcn", {"channels": [5, 10], "kernel_sizes": [11, 5, 3]}, r"model\.channels"),
        ("attention_fcn", {"pool_after": [0, 5]}, r"model\.pool_after"),
        ("attention_fcn", {"frequency_reduction": "max"}, r"model\.frequency_reduction='max'.*\['mean', 'stack'\]"),
        ("attention_fcn_2d", {"attention_dim": 0}, r"model\.attention_dim"),
        ("attention_fcn_2d", {"strides": [4, 0, 1, 1]}, r"model\.strides"),
    ],
)
def test_bad_settings_name_the_key(name, kw, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, in_channels=1, num_classes=4, **kw)
