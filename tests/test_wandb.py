"""``logger=wandb``: offline runs without an API key, and what ``WandbDashboard`` logs.

wandb 0.31 writes an offline run's config, summary, history and artifacts only into its
``run-<id>.wandb`` file (``files/`` holds just the media: images and tables), and ships no Python
reader for it any more. :func:`wandb_records` reads the file's framing (LevelDB log format with a
``:W&B`` header, as in wandb's former ``sdk/internal/datastore.py``) and decodes each record with
wandb's own protobuf schema (``wandb.proto.wandb_internal_pb2.Record``).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import OmegaConf
from torchmetrics.classification import MulticlassF1Score, MulticlassPrecision, MulticlassRecall

from ser_lightning.callbacks.wandb_dashboard import (
    EXAMPLES_KEY,
    PER_CLASS_COLUMNS,
    WandbDashboard,
    per_class_rows,
    plot_augmentation_examples,
)
from ser_lightning.cli.common import build_callbacks, build_loggers, finish_wandb
from tests.conftest import TINY_DATA, run_script

_BLOCK, _HEADER = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> Iterator:
    """Decoded ``Record`` protobufs of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:_HEADER])
    assert (ident, magic) == (b":W&B", 0xBEE1), "not a W&B transaction log"
    pos, payload = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer: zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if kind == 0:  # zero-filled rest of a block
            pos += left
            continue
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        pos += _HEADER + length
        payload = chunk if kind in (_FULL, _FIRST) else payload + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            yield record


def _key(item) -> str:
    """Top-level key of a config/summary/history item (``key``, or the first ``nested_key``)."""
    return item.key or item.nested_key[0]


def summarize(path: Path) -> dict:
    """Merge a run's records: run info, config, summary, history keys, artifacts, exit code."""
    out = {"run": None, "config": {}, "summary": {}, "history_keys": set(), "artifacts": [], "exit_code": None}
    for r in wandb_records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = r.run
        elif kind == "config":
            for u in r.config.update:
                if u.key:
                    out["config"][u.key] = json.loads(u.value_json)
        elif kind == "summary":
            for u in r.summary.update:
                if len(u.nested_key) <= 1 and not _key(u).startswith("_"):  # scalars, not media
                    out["summary"][_key(u)] = json.loads(u.value_json)
        elif kind == "history":
            out["history_keys"].update(_key(i) for i in r.history.item)
        elif kind == "artifact":
            out["artifacts"].append(r.artifact)
        elif kind == "exit":
            out["exit_code"] = r.exit.exit_code
    return out


@pytest.fixture
def wandb_offline_env(tmp_path, monkeypatch):
    """No API key anywhere, and every W&B directory under ``tmp_path``."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return tmp_path


# ------------------------------------------------------------------------------------ unit tests
def test_per_class_rows_match_torchmetrics():
    gen = torch.Generator().manual_seed(0)
    n = 4
    target = torch.randint(0, n - 1, (200,), generator=gen)  # class 3 never occurs
    preds = torch.where(torch.rand(200, generator=gen) < 0.6, target, torch.randint(0, n, (200,), generator=gen))
    preds[preds == 2] = 1  # class 2 never predicted
    cm = torch.zeros(n, n, dtype=torch.long)
    cm.index_put_((target, preds), torch.ones_like(target), accumulate=True)
    rows = per_class_rows(cm.tolist(), list("abcd"))
    assert [r[0] for r in rows] == list("abcd") and all(len(r) == len(PER_CLASS_COLUMNS) for r in rows)
    precision = MulticlassPrecision(n, average="none")(preds, target)
    recall = MulticlassRecall(n, average="none")(preds, target)
    f1 = MulticlassF1Score(n, average="none")(preds, target)
    for i, (_, p, r, f, support, predicted) in enumerate(rows):
        assert support == int((target == i).sum()) and predicted == int((preds == i).sum())
        assert p == pytest.approx(float(precision[i])) if predicted else p is None
        assert r == pytest.approx(float(recall[i])) if support else r is None
        assert f == pytest.approx(float(f1[i]))
    with pytest.raises(ValueError, match="does not match 3 labels"):
        per_class_rows(cm.tolist(), list("abc"))


def test_plot_augmentation_examples_checks_shapes():
    before = torch.randn(2, 1, 8, 10)
    fig = plot_augmentation_examples(before, before + 1, ["a", "b"])
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="equal"):
        plot_augmentation_examples(before, before[:, :, :4], ["a", "b"])
    with pytest.raises(ValueError, match="3 titles for 2 clips"):
        plot_augmentation_examples(before, before, ["a", "b", "c"])


def test_dashboard_is_a_noop_without_wandb_logger(tmp_path, monkeypatch):
    import wandb

    def no_wandb(*args, **kwargs):
        raise AssertionError("wandb must not be used without a WandbLogger")

    monkeypatch.setattr(wandb, "init", no_wandb)
    dm = BoringDataModule()
    dashboard = WandbDashboard(run_config={"a": 1}, log_best_checkpoint=True)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, limit_test_batches=1,
                         logger=CSVLogger(tmp_path), callbacks=[dashboard], default_root_dir=tmp_path,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(BoringModel(), datamodule=dm)
    trainer.test(BoringModel(), datamodule=dm, verbose=False)
    assert "on_after_batch_transfer" not in vars(dm) and wandb.run is None
    assert not list(tmp_path.rglob("wandb"))


def _cfg(**loggers):
    return OmegaConf.create({"callbacks": {}, "logger": loggers, "seed": 1, "data": {"root": "x"}})


def test_build_callbacks_adds_dashboard_only_with_a_wandb_logger(wandb_offline_env):
    csv = {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": str(wandb_offline_env)}
    assert build_callbacks(None, run_config=_cfg(csv=csv)) == []
    wb = {"_target_": "lightning.pytorch.loggers.WandbLogger", "save_dir": str(wandb_offline_env / "w"),
          "offline": None, "log_model": True, "group": "cv_x"}
    cfg = _cfg(csv=csv, wandb=wb)
    (dashboard,) = build_callbacks(cfg.callbacks, run_config=cfg)
    assert isinstance(dashboard, WandbDashboard) and dashboard.log_best_checkpoint
    assert dashboard.run_config["data"] == {"root": "x"} and dashboard.run_config["logger"]["wandb"]["group"] == "cv_x"
    loggers = build_loggers(cfg.logger)  # creates no W&B run yet (WandbLogger starts it lazily)
    (wandb_logger,) = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    assert wandb_logger._offline and wandb_logger._log_model is False  # the dashboard logs the checkpoint
    bad = _cfg(wandb={**wb, "log_model": "all"})
    with pytest.raises(ValueError, match="logger.wandb.log_model='all'"):
        build_callbacks(None, run_config=bad)
    with pytest.raises(ValueError, match="logger.wandb.log_model='all'"):
        build_loggers(bad.logger)


def test_finish_wandb_marks_a_failed_run(wandb_offline_env):
    import wandb

    run = wandb.init(project="t", dir=str(wandb_offline_env), mode="offline")
    with pytest.raises(RuntimeError):
        try:
            raise RuntimeError("boom")
        finally:
            finish_wandb()
    assert wandb.run is None
    (log_file,) = Path(run.dir).parent.glob("run-*.wandb")
    assert summarize(log_file)["exit_code"] == 1
    wandb.teardown()


# ----------------------------------------------------------------------------------- end to end
def test_wandb_offline_run_logs_dashboard(tiny_ravdess, wandb_offline_env):
    tmp_path = wandb_offline_env
    run = tmp_path / "run"
    r = run_script("train.py", "model=homebrew_cnn", "logger=wandb", "logger.wandb.group=cv_test",
                   "logger.wandb.tags=[unit,offline]", "logger.wandb.log_model=true", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=2", "callbacks.progress_bar=null", f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'cache'}",
                   *TINY_DATA, cwd=run, fresh_process=True)  # W&B hooks the process's output
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    (offline,) = (run / "wandb").glob("offline-run-*")
    (log_file,) = offline.glob("run-*.wandb")
    got = summarize(log_file)

    assert got["run"].run_group == "cv_test" and list(got["run"].tags) == ["unit", "offline"]
    config = got["config"]
    assert config["data"]["root"] == str(tiny_ravdess) and config["model"]["name"] == metrics["model"]
    assert config["logger"]["wandb"]["group"] == "cv_test" and "logger.wandb.log_model=true" in config["hydra_overrides"]
    assert config["trainer"]["max_epochs"] == 1 and config["seed"] == 42

    summary = got["summary"]
    assert summary["params_total"] == metrics["parameters"] and 0 < summary["params_trainable"] <= metrics["parameters"]
    for name, recall in metrics["per_class_recall"].items():
        assert summary[f"test/recall/{name}"] == pytest.approx(recall)
    assert summary["val/ua_best"] == pytest.approx(metrics["best_val_ua"])  # the W&B sweeps' metric

    assert {"val/ua", "train/loss_epoch", "test/ua", EXAMPLES_KEY, "test/confusion_matrix_image",
            "test/per_class", "test/confusion_matrix_table"} <= got["history_keys"]
    images = offline / "files" / "media" / "images"
    assert len(list((images / "augment").glob("examples_*.png"))) == 1
    assert len(list((images / "test").glob("confusion_matrix_image_*.png"))) == 1
    (table_file,) = (offline / "files" / "media" / "table" / "test").glob("per_class_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == PER_CLASS_COLUMNS and [row[0] for row in table["data"]] == metrics["labels"]
    assert [row[2] for row in table["data"]] == pytest.approx(list(metrics["per_class_recall"].values()))
    assert sum(row[4] for row in table["data"]) == metrics["n"]
    assert sum(row[3] for row in table["data"]) / len(table["data"]) == pytest.approx(metrics["macro_f1"], abs=1e-6)

    (model,) = [a for a in got["artifacts"] if a.type == "model"]
    assert "best" in model.aliases and json.loads(model.metadata)["monitor"] == "val/ua"
    assert got["exit_code"] == 0
