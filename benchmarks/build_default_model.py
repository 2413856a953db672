"""Build the default model shipped with the package: train the 6 folds, ship one, write both model cards.

What it does, from one set of ``train.py`` overrides (the default model's configuration):

1. Trains one model per speaker-independent fold of RAVDESS (``data.split=kfold data.n_folds=6``,
   test actors 1–4, 5–8, …, 21–24; ``data.fold=0..5``), each in ``<work>/fold<k>/`` with
   ``train.py``'s own outputs. With ``refit=true`` among the overrides, ``train.py`` chooses the epoch
   count on the fold's 4 validation speakers, then trains a fresh model on the 16 training + 4 validation
   speakers for that many epochs (``checkpoints/refit.ckpt``); ``metrics.json`` holds the test UA / WA /
   macro-F1 of the model its ``checkpoint`` names.
2. Writes ``<work>/cv_results.json`` (protocol, per-fold test results of the models actually evaluated,
   their means and spreads, the command, date and machine) — the ``results=`` file of ``export.py`` —
   and ``<work>/summary.md``, the numbers the README's "The shipped default model" section quotes.
3. Ships fold ``--ship-fold``'s evaluated checkpoint (``refit.ckpt`` when the fold has one, else
   ``best.ckpt``; its test actors were never heard in training or model selection, so its fold result is
   an honest estimate for it) to ``ser_lightning/assets/default/model.ckpt``, slimmed: no optimiser or
   loop state, no machine paths (``data.root`` and ``data.cache_dir`` are cleared) and, for a frozen
   pretrained encoder, no encoder weights — they come from the installed package and the file records
   their SHA-256 instead (:mod:`ser_lightning.modules.frozen_encoder`). ``model.card.json``
   (machine-readable), ``MODEL_CARD.md`` (for people) and ``cv_results.json`` go beside it. Replacing the
   shipped model is rerunning this script.

The training is on the CPU with a fixed seed and one intra-op thread per fold (``--threads``, default 1:
the fold runs get ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``; with 2 threads the L-BFGS fits round
differently and the heads are not bit-identical), so anyone with RAVDESS can rebuild the weights bit for
bit; the shipped tensors' SHA-256 (``state_dict_sha256`` in the output) says whether a rebuild matches::

    SER_DATA_DIR=/path/to/data python -m benchmarks.build_default_model --overrides model=whisper_tiny refit=true
    python -m benchmarks.build_default_model --dry-run --overrides model=whisper_tiny   # print the commands only

``--from-work`` skips training and builds the asset from folds already trained in ``--work``.

``--all-data`` builds the cross-corpus default instead (issue 21): one ``train.py`` run on every clip of RAVDESS,
TESS and TurEV-DB (``data.split=all``, 7 classes with calm folded into neutral) for the epochs the recipe's
development protocol chose (the median of its RAVDESS folds' refit epochs), shipped with that protocol's numbers
(``--protocol-results benchmarks/results/xcorpus_<recipe>.json``, :mod:`benchmarks.xcorpus_cv`)::

    SER_DATA_DIR=/path/to/data python -m benchmarks.build_default_model --all-data \
        --protocol-results benchmarks/results/xcorpus_<recipe>.json --overrides model=whisper_tiny ...

Every build also records what ties the tests to the shipped file (``reference_evaluation`` in
``cv_results.json`` and the card, a section of ``MODEL_CARD.md``): the file's SHA-256 and the shipped
model's per-class recall on a named set of real clips, :data:`REFERENCE_SPEAKERS` (every RAVDESS speech
clip of actors 1-4: fold 0's test actors), with the list of those clips' names as a SHA-256 and whether
the model heard those speakers in training or validation (worked out from the split stored in the
checkpoint, or ``--reference-heard``). ``tests/test_default_model.py`` reads these records and
re-measures them, so a swapped or stale head fails the suite. ``--record-only`` writes the records for the
file already shipped, without training or changing it::

    SER_DATA_DIR=/path/to/data python -m benchmarks.build_default_model --record-only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
N_FOLDS = 6
#: Checkpoint entries the shipped file keeps (the optimiser and loop state are for resuming training only).
KEEP_KEYS = ("state_dict", "hyper_parameters", "datamodule_hyper_parameters", "pytorch-lightning_version",
             "epoch", "global_step")
#: Datamodule settings that only say where the builder kept its files: cleared in the shipped file (every
#: task that reads data takes them from its own configuration), so the file does not depend on them.
MACHINE_PATH_KEYS = ("root", "cache_dir")
#: Per-fold entries of ``metrics.json`` copied into the results.
METRIC_KEYS = ("ua", "wa", "macro_f1", "n")
#: The named set of real clips whose per-class recall every build records and the tests re-measure: every
#: RAVDESS speech clip of these actors (240 clips; fold 0's test actors, so unheard by a fold-0 model).
REFERENCE_CORPUS = "ravdess"
REFERENCE_SPEAKERS = ("ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04")
#: Where the reference records go in ``cv_results.json`` (and the card's ``cross_validation``).
REFERENCE_KEY = "reference_evaluation"


def fold_overrides(overrides: list[str], fold: int, work: Path) -> list[str]:
    """``train.py`` arguments of one fold.

    Args:
        overrides: The default model's configuration (``model=...``, ``trainer.max_epochs=...``, ``seed=...``).
        fold: Test fold, ``0..5``.
        work: Work folder; the fold's run directory is ``<work>/fold<fold>``.

    Returns:
        The argument list after ``python train.py``.
    """
    return [*overrides, "data.split=kfold", f"data.n_folds={N_FOLDS}", f"data.fold={fold}",
            "trainer.accelerator=cpu", f"hydra.run.dir={work / f'fold{fold}'}"]


def test_actors(fold: int) -> list[int]:
    """RAVDESS actors in the test set of contiguous fold ``fold`` (see :mod:`ser_lightning.data.splits`)."""
    return list(range(4 * fold + 1, 4 * fold + 5))


def fold_checkpoint(fold_dir: Path, metrics: dict[str, Any], check: bool = True) -> Path:
    """The checkpoint a fold's ``metrics.json`` describes: its ``checkpoint`` (``refit.ckpt`` with
    ``refit=true``), looked up in the fold's ``checkpoints/`` folder (the work folder may have moved);
    without that entry ``refit.ckpt`` when present, else ``best.ckpt``.

    Args:
        fold_dir: The fold's run directory.
        metrics: Its ``metrics.json``.
        check: Raise when the file is missing (``False``: only name it).

    Raises:
        FileNotFoundError: the checkpoint is missing (with ``check``).
    """
    named = metrics.get("checkpoint")
    if named:
        path = fold_dir / "checkpoints" / Path(named).name
    else:
        refit = fold_dir / "checkpoints" / "refit.ckpt"
        path = refit if refit.is_file() else fold_dir / "checkpoints" / "best.ckpt"
    if check and not path.is_file():
        raise FileNotFoundError(f"{path}: the checkpoint of {fold_dir.name}'s test metrics is missing")
    return path


def machine(threads: int | None = None) -> dict[str, Any]:
    """What the build ran on: OS, CPU, cores, thread settings, Python and library versions.

    Args:
        threads: Intra-op threads of the fold runs (``--threads``); ``None``: this process's
            ``OMP_NUM_THREADS``.
    """
    import lightning
    import torch

    from benchmarks.latency import cpu_model

    return {"platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "OMP_NUM_THREADS": str(threads) if threads is not None else os.environ.get("OMP_NUM_THREADS"),
            "python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__}


def _spread(folds: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1, as every CV table of the README) of one metric over the folds."""
    vals = [float(f[key]) for f in folds]
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def collect_results(work: Path, overrides: list[str], ship_fold: int, threads: int = 1) -> dict[str, Any]:
    """The cross-validation results of the trained folds (the ``results=`` file of ``export.py``).

    Each fold's entry holds the test metrics of the model its ``metrics.json`` describes (the refitted one
    with ``refit=true``), that checkpoint's file name, the validation-selected model's test metrics
    (``selected_model``, with ``refit=true``), the refit's epochs and training set, and the fold's wall
    time and frozen-feature extraction time.

    Args:
        work: The folder holding ``fold0`` … ``fold5``.
        overrides: The ``train.py`` overrides (recorded in the command).
        ship_fold: The fold whose model ships.
        threads: Intra-op threads of the fold runs (``--threads``; recorded in the command and machine).

    Returns:
        ``{"protocol", "folds", "ua_mean", "ua_sd", "wa_mean", "wa_sd", "macro_f1_mean", "macro_f1_sd",
        "shipped", "command", "overrides", "built_at", "machine"}`` (fractions; ``*_sd`` is the population
        standard deviation across folds).

    Raises:
        FileNotFoundError: a fold's ``metrics.json`` is missing (that fold did not finish).
    """
    folds = []
    for k in range(N_FOLDS):
        path = work / f"fold{k}" / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: fold {k} has no test metrics (did its training finish?)")
        m = json.loads(path.read_text())
        entry: dict[str, Any] = {"fold": k, "test_speakers": test_actors(k), **{key: m.get(key) for key in METRIC_KEYS},
                                 "checkpoint": fold_checkpoint(path.parent, m, check=False).name}
        if m.get("selected_model"):
            entry["selected_model"] = {key: m["selected_model"].get(key) for key in ("ua", "wa", "macro_f1")}
        if m.get("refit"):
            entry["refit"] = {key: m["refit"].get(key) for key in ("epochs", "train_clips", "train_speakers", "fit_s")}
        entry["wall_time_s"] = m.get("wall_time_s")
        entry["extract_s"] = (m.get("frozen_features") or {}).get("extract_s")
        folds.append(entry)
    refit = all("refit" in f for f in folds)
    command = ("SER_DATA_DIR=<data> python -m benchmarks.build_default_model "
               + (f"--threads {threads} " if threads != 1 else "")
               + "--overrides " + " ".join(shlex.quote(o) for o in overrides))
    protocol = (f"Speaker-independent {N_FOLDS}-fold cross-validation on the RAVDESS speech clips (8 classes): each "
                "fold tests on 4 actors (1-4, 5-8, ..., 21-24) never heard in training or model selection; 4 of the "
                "other 20 actors are validation speakers and 16 train. ")
    protocol += ("The validation speakers choose the number of epochs (the best validation UA); a fresh model is "
                 "then trained on the training + validation speakers (all 20) for that many epochs, and that "
                 "refitted model is the one tested." if refit else
                 "The validation speakers choose the checkpoint (early stopping and checkpoint selection), which is "
                 "the one tested.")
    results: dict[str, Any] = {"protocol": protocol, "folds": folds}
    for key in ("ua", "wa", "macro_f1"):
        results[f"{key}_mean"], results[f"{key}_sd"] = _spread(folds, key)
    if refit:
        results["selected_model_ua_mean"], results["selected_model_ua_sd"] = _spread(
            [f["selected_model"] for f in folds], "ua")
    trained_on = "the training + validation speakers" if refit else "the training speakers"
    results["shipped"] = (f"the {'refitted ' if refit else ''}model of fold {ship_fold} ({folds[ship_fold]['checkpoint']}; "
                          f"trained on {trained_on}, test actors {test_actors(ship_fold)} never heard; its test UA "
                          f"{100 * folds[ship_fold]['ua']:.1f} %).")
    results.update(command=command, overrides=list(overrides),
                   built_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), machine=machine(threads))
    return results


def slim_checkpoint(src: Path, dst: Path) -> dict[str, Any]:
    """Write the shipped copy of a ``train.py`` checkpoint (all that prediction and ``eval.py`` need).

    Keeps :data:`KEEP_KEYS`, clears :data:`MACHINE_PATH_KEYS` of the datamodule settings and, for a
    frozen pretrained encoder, leaves out the encoder's tensors and records their SHA-256
    (:func:`ser_lightning.modules.frozen_encoder.strip_frozen_encoder`).

    Args:
        src: The fold's checkpoint.
        dst: The shipped file.

    Returns:
        ``{"bytes", "file_sha256", "state_dict_sha256", "tensors", "parameters", "head_only",
        "frozen_encoder"}``: ``state_dict_sha256`` is the digest of the shipped tensors (names and raw bytes),
        the number to compare between rebuilds.
    """
    import torch

    from ser_lightning.inference.checkpoint import read_checkpoint
    from ser_lightning.models.encoders.base import weights_sha256
    from ser_lightning.modules.frozen_encoder import (
        FROZEN_ENCODER_KEY,
        has_frozen_encoder,
        strip_frozen_encoder,
    )

    full = read_checkpoint(src)
    slim = {k: full[k] for k in KEEP_KEYS if k in full}
    if "datamodule_hyper_parameters" in slim:
        slim["datamodule_hyper_parameters"] = {**slim["datamodule_hyper_parameters"],
                                               **dict.fromkeys(MACHINE_PATH_KEYS)}
    head_only = has_frozen_encoder(slim)
    if head_only:
        slim = strip_frozen_encoder(slim)
    torch.save(slim, dst)
    state = slim["state_dict"]
    return {"bytes": dst.stat().st_size, "file_sha256": hashlib.sha256(dst.read_bytes()).hexdigest(),
            "state_dict_sha256": weights_sha256(state), "tensors": len(state),
            "parameters": int(sum(t.numel() for t in state.values())), "head_only": head_only,
            "frozen_encoder": slim.get(FROZEN_ENCODER_KEY)}


#: The corpora of the all-data model (``--all-data``): everything under the data root here.
ALL_DATA_CORPORA = ("ravdess", "tess", "turev")


def all_data_overrides(overrides: list[str], epochs: int, work: Path) -> list[str]:
    """``train.py`` arguments of the all-data model: every clip of :data:`ALL_DATA_CORPORA` (calm folded into
    neutral, ``ekman7``), ``data.split=all``, ``epochs`` epochs, no refit; run directory ``<work>/final``."""
    return [*overrides, f"data.corpora=[{','.join(ALL_DATA_CORPORA)}]", "data.label_set=ekman7", "data.calm=neutral",
            "data.split=all", "refit=false", f"trainer.max_epochs={epochs}", "trainer.accelerator=cpu",
            f"hydra.run.dir={work / 'final'}"]


def protocol_epochs(protocol: dict[str, Any]) -> int:
    """The epochs the development protocol's RAVDESS folds chose: the median of their refit epochs (each
    chosen on that fold's validation actors), rounded down.

    Raises:
        ValueError: the protocol file has no fold with an epoch count.
    """
    epochs = [int(c["epochs"]) for c in protocol.get("cells", []) if c["cell"].startswith("fold") and c.get("epochs")]
    if not epochs:
        raise ValueError("the development protocol's results hold no RAVDESS fold with its epochs (run its folds)")
    return int(statistics.median_low(epochs))


def all_data_results(protocol: dict[str, Any], work: Path, overrides: list[str], epochs: int,
                     threads: int = 1) -> dict[str, Any]:
    """What the all-data model's card and ``cv_results.json`` say: the development protocol run with the same
    recipe (RAVDESS's 6 folds, each with the other corpora in training, and the cross-corpus cells, plain and
    transductive), the final training's facts, the command and the machine.

    Args:
        protocol: ``benchmarks/results/xcorpus_<recipe>.json`` (:mod:`benchmarks.xcorpus_cv`).
        work: The build folder (``final/metrics.json`` is read).
        overrides: The recipe's ``train.py`` overrides.
        epochs: The epochs the final model trained.
        threads: Intra-op threads of the final run.

    Returns:
        The results (fractions), as :func:`collect_results`'s plus ``cross_corpus``, ``cross_corpus_protocol``,
        ``development_protocol`` and ``final_training``.
    """
    folds, cross = [], []
    for c in protocol["cells"]:
        r = c["restricted"]
        if c["cell"].startswith("fold"):
            k = int(c["cell"].removeprefix("fold"))
            folds.append({"fold": k, "test_speakers": test_actors(k), "ua": r["ua"] / 100, "wa": r["wa"] / 100,
                          "macro_f1": r["macro_f1"] / 100, "n": c["n"], "refit": {"epochs": c.get("epochs")}})
        else:
            cross.append({"cell": c["cell"].replace(">", " → "), "n": c["n"], "classes": c["classes"],
                          "ua": r["ua"] / 100, "ua_full_output": c["full"]["ua"] / 100,
                          "adapted": {k: v["ua"] / 100 for k, v in c.get("adapted", {}).items() if k != "notes"}})
    final = json.loads((work / "final" / "metrics.json").read_text())
    extra = ", ".join(protocol.get("incorpus_extra") or []) or "nothing else"
    results: dict[str, Any] = {
        "protocol": (f"Development protocol, same recipe: speaker-independent 6-fold cross-validation on RAVDESS "
                     f"(7 classes, calm folded into neutral; test actors 1-4, 5-8, ..., 21-24, never heard; 4 of the "
                     f"other 20 actors validate and choose the epochs, then a refit on all 20; {extra} also trains)."),
        "folds": folds,
        "cross_corpus_protocol": ("Cross-corpus cells of the development protocol (benchmarks/xcorpus_cv.py): train on "
                                  "the corpora left of the arrow, score every clip of the one on the right on its own "
                                  "classes (the output restricted to them). Plain: nothing from the target. Adapted "
                                  "rows are transductive: they use the unlabelled target clips' feature statistics "
                                  "(set: all of them; speaker: each speaker's) or class shares (em), never labels."),
        "cross_corpus": cross,
        "development_protocol": {k: protocol.get(k) for k in ("name", "date", "command", "minutes")},
        "final_training": {"epochs": epochs, "epochs_chosen_by": "the median of the 6 RAVDESS folds' refit epochs "
                           "(each chosen on that fold's validation actors)",
                           **{k: final.get(k) for k in ("train_clips", "train_speakers", "train_corpora", "class_counts",
                                                        "wall_time_s")}},
    }
    for key in ("ua", "wa", "macro_f1"):
        results[f"{key}_mean"], results[f"{key}_sd"] = _spread(folds, key)
    results["shipped"] = (f"a model trained on every clip of {', '.join(ALL_DATA_CORPORA)} "
                          f"({final.get('train_clips')} clips, {final.get('train_speakers')} speakers) for {epochs} "
                          "epochs; no clip was held out, so its own accuracy is the protocol's above.")
    results.update(command=("SER_DATA_DIR=<data> python -m benchmarks.build_default_model --all-data "
                            f"--protocol-results benchmarks/results/xcorpus_{protocol['name']}.json "
                            + (f"--threads {threads} " if threads != 1 else "")
                            + "--overrides " + " ".join(shlex.quote(o) for o in overrides)),
                   overrides=list(overrides),
                   built_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), machine=machine(threads))
    return results


def write_asset(ckpt: Path, results: dict[str, Any], out: Path) -> dict[str, Any]:
    """Install ``ckpt`` as the shipped default with both model cards and the cross-validation results.

    Args:
        ckpt: The chosen fold's evaluated checkpoint.
        results: :func:`collect_results`; ``shipped_file`` (:func:`slim_checkpoint`'s facts) is added.
        out: The asset folder (``ser_lightning/assets/default``).

    Returns:
        ``{"ckpt", "card_json", "card_md", "cv_results"}`` paths.
    """
    from ser_lightning.inference.card import model_card, model_card_markdown, training_summary
    from ser_lightning.inference.checkpoint import load_checkpoint, stored_datamodule_hparams
    from ser_lightning.inference.default_model import DEFAULT_MODEL_FILE

    out.mkdir(parents=True, exist_ok=True)
    dst = out / DEFAULT_MODEL_FILE
    results["shipped_file"] = {"source": f"{ckpt.parent.parent.name}/checkpoints/{ckpt.name}",
                               **slim_checkpoint(ckpt, dst)}
    classifier, audio_cfg = load_checkpoint(dst)  # the shipped file loads (weights-only; encoder digest checked)
    card = model_card(classifier, audio_cfg, dst)
    card["source_checkpoint"]["path"] = f"ser_lightning/assets/default/{DEFAULT_MODEL_FILE}"
    card["training_data"] = training_summary(stored_datamodule_hparams(dst))
    card["cross_validation"] = results
    card["files"] = {"checkpoint": DEFAULT_MODEL_FILE}
    if results["shipped_file"]["frozen_encoder"]:
        card["frozen_encoder"] = results["shipped_file"]["frozen_encoder"]
    paths = {"ckpt": dst, "card_json": out / "model.card.json", "card_md": out / "MODEL_CARD.md",
             "cv_results": out / "cv_results.json"}
    paths["card_json"].write_text(json.dumps(card, indent=2) + "\n")
    paths["card_md"].write_text(model_card_markdown(card, results), encoding="utf-8")
    paths["cv_results"].write_text(json.dumps(results, indent=2) + "\n")
    return paths


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reference_clip_stems(data_root: Path, speakers: tuple[str, ...] | list[str] = REFERENCE_SPEAKERS) -> list[str]:
    """Names (without extension, so ``.wav`` and ``.flac`` copies agree) of the reference clips, sorted.

    Args:
        data_root: Data root holding the reference corpus (``$SER_DATA_DIR``).
        speakers: Speaker ids of the reference set.

    Raises:
        FileNotFoundError: the corpus is missing under ``data_root``.
    """
    from ser_lightning.data.scan import scan_corpus

    keep = set(speakers)
    return sorted(Path(u.path).stem for u in scan_corpus(data_root, REFERENCE_CORPUS).utterances if u.speaker in keep)


def clip_names_sha256(stems: list[str]) -> str:
    """SHA-256 of the sorted clip names, one per line: names the clip set exactly in 64 characters."""
    return hashlib.sha256("\n".join(sorted(stems)).encode()).hexdigest()


def heard_speakers(ckpt: Path, data_root: Path, cache_dir: Path) -> set[str]:
    """Speakers a checkpoint's model trained or selected its epochs on: its stored split's training and
    validation speakers (a refit trains on both), rebuilt from the data settings stored in the file.

    Args:
        ckpt: A ``train.py`` checkpoint (or the shipped file).
        data_root: Data root of the corpora it was trained on.
        cache_dir: Decode cache.

    Raises:
        ValueError: the stored split cannot be rebuilt (e.g. it has no test set); then say it with
            ``--reference-heard``.
    """
    from ser_lightning.data.datamodule import SERDataModule
    from ser_lightning.inference.checkpoint import stored_datamodule_hparams

    settings = {**stored_datamodule_hparams(ckpt), "root": str(data_root), "cache_dir": str(cache_dir),
                "progress": False, "run_dir": None}
    dm = SERDataModule(**settings)
    dm.setup("fit")
    return {u.speaker for u, a in zip(dm.utterances, dm.assignment) if a in ("train", "val")}


def reference_evaluation(ckpt: Path, data_root: Path, speakers: tuple[str, ...] | list[str] = REFERENCE_SPEAKERS,
                         heard: bool | None = None, cache_dir: Path | None = None) -> dict[str, Any]:
    """Evaluate ``ckpt`` on the named reference clips (``eval.py split=all`` on those speakers) and return the record.

    Args:
        ckpt: The shipped file.
        data_root: Data root holding RAVDESS (``$SER_DATA_DIR``).
        speakers: Speaker ids of the reference set (default :data:`REFERENCE_SPEAKERS`).
        heard: Whether the model heard these speakers in training or validation; ``None``: work it out
            from the split stored in the checkpoint (:func:`heard_speakers`).
        cache_dir: Decode cache (``None``: ``$SER_CACHE_DIR`` or the configured default).

    Returns:
        ``{"clip_set": {"name", "corpus", "speakers", "selection", "n_clips", "clip_names_sha256", "heard_in_training",
        "heard_how"}, "labels", "n", "ua", "wa", "macro_f1", "per_class_recall", "per_class_n", "per_class_correct",
        "confusion_matrix", "unscorable", "checkpoint_sha256", "command", "measured_at", "machine"}`` (fractions).

    Raises:
        FileNotFoundError: RAVDESS is not under ``data_root``.
        ValueError: ``heard`` is ``None`` and the stored split cannot be rebuilt.
    """
    import tempfile

    from hydra import compose, initialize_config_dir

    from ser_lightning.cli.eval import evaluate

    data_root, speakers = Path(data_root).resolve(), list(speakers)
    stems = reference_clip_stems(data_root, speakers)
    speaker_list = ",".join(speakers)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"ckpt_path={Path(ckpt).resolve()}", f"paths.output_dir={tmp}", f"data.root={data_root}",
                     f"+data.corpora=[{REFERENCE_CORPUS}]", f"+data.speakers=[{speaker_list}]", "split=all",
                     "trainer.accelerator=cpu", "trainer.devices=1"]
        if cache_dir is not None:
            overrides.append(f"data.cache_dir={cache_dir}")
        with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
            cfg = compose("eval", overrides=overrides)
        if heard is None:
            overlap = sorted(set(speakers) & heard_speakers(ckpt, data_root, Path(cfg.data.cache_dir)))
            heard = bool(overlap)
            how = (f"the split stored in the checkpoint puts {overlap} in training or validation" if overlap else
                   "the split stored in the checkpoint holds none of these speakers in training or validation")
        else:
            how = "stated by the builder (--reference-heard)"
        m = evaluate(cfg)
    cm = m["confusion_matrix"]
    labels = list(m["labels"])
    name = f"RAVDESS actors {', '.join(str(int(s.rsplit('_', 1)[-1])) for s in speakers)}"
    return {
        "clip_set": {"name": name, "corpus": REFERENCE_CORPUS, "speakers": speakers,
                     "selection": f"every RAVDESS speech clip of these actors under <data root>/"
                                  f"{REFERENCE_CORPUS} (eval.py split=all), scored on the model's classes",
                     "n_clips": len(stems), "clip_names_sha256": clip_names_sha256(stems),
                     "heard_in_training": heard, "heard_how": how},
        "labels": labels, "n": m["n"], "ua": m["ua"], "wa": m["wa"], "macro_f1": m["macro_f1"],
        "per_class_recall": {c: float(r) for c, r in m["per_class_recall"].items()},
        "per_class_n": {c: int(sum(cm[i])) for i, c in enumerate(labels)},
        "per_class_correct": {c: int(cm[i][i]) for i, c in enumerate(labels)},
        "confusion_matrix": cm, "unscorable": m["unscorable"]["n"],
        "checkpoint_sha256": file_sha256(ckpt),
        "command": (f"SER_DATA_DIR=<data> python eval.py ckpt_path=default split=all '+data.corpora=[{REFERENCE_CORPUS}]' "
                    f"'+data.speakers=[{speaker_list}]'"),
        "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }


def reference_markdown(ref: dict[str, Any]) -> str:
    """The ``MODEL_CARD.md`` section of a :func:`reference_evaluation` record."""
    pct = lambda v: f"{100 * float(v):.1f} %"  # noqa: E731
    clips = ref["clip_set"]
    heard = ("were heard in training or validation" if clips["heard_in_training"] else
             "were never heard in training or validation")
    lines = ["## Per-class recall on named reference clips", "",
             f"Measured when this file was built, on {clips['name']}: {clips['selection']} ({clips['n_clips']} clips; "
             f"their sorted names have SHA-256 `{clips['clip_names_sha256']}`). These speakers {heard} "
             f"({clips['heard_how']}). The test suite re-measures it (`tests/test_default_model.py`).", "",
             "| class | clips | right | recall |", "|---|---:|---:|---:|"]
    lines += [f"| {c} | {ref['per_class_n'][c]} | {ref['per_class_correct'][c]} | {pct(ref['per_class_recall'][c])} |"
              for c in ref["labels"]]
    lines += ["", f"- {ref['n']} clips scored ({ref['unscorable']} outside the model's classes): UA {pct(ref['ua'])}, "
              f"WA {pct(ref['wa'])}, macro-F1 {pct(ref['macro_f1'])}",
              f"- file SHA-256 when measured: `{ref['checkpoint_sha256']}`",
              f"- command: `{ref['command']}`", ""]
    return "\n".join(lines)


def _card_markdown(card: dict[str, Any], results: dict[str, Any]) -> str:
    """``MODEL_CARD.md``: :func:`~ser_lightning.inference.card.model_card_markdown` plus the reference section."""
    from ser_lightning.inference.card import model_card_markdown

    text = model_card_markdown(card, results)
    ref = results.get(REFERENCE_KEY)
    if not ref:
        return text
    section = reference_markdown(ref) + "\n"
    marker = "## Intended use"
    return text.replace(marker, section + marker, 1) if marker in text else text + "\n" + section


def record_reference(out: Path, data_root: Path, speakers: tuple[str, ...] | list[str] = REFERENCE_SPEAKERS,
                     heard: bool | None = None, cache_dir: Path | None = None) -> dict[str, Any]:
    """Write the records that pin the shipped file into ``out``'s ``cv_results.json``, ``model.card.json`` and
    ``MODEL_CARD.md``, without changing the file: its SHA-256 (file and tensors) and
    :func:`reference_evaluation`.

    Args:
        out: The asset folder (``model.ckpt``, ``cv_results.json``, ``model.card.json``).
        data_root: Data root holding RAVDESS.
        speakers: Speaker ids of the reference set.
        heard: See :func:`reference_evaluation`.
        cache_dir: Decode cache.

    Returns:
        The updated results (``cv_results.json``).

    Raises:
        FileNotFoundError: the asset folder lacks one of its files, or RAVDESS is missing.
    """
    from ser_lightning.inference.checkpoint import read_checkpoint
    from ser_lightning.inference.default_model import DEFAULT_MODEL_FILE
    from ser_lightning.models.encoders.base import weights_sha256

    ckpt, results_path, card_path = out / DEFAULT_MODEL_FILE, out / "cv_results.json", out / "model.card.json"
    for path in (ckpt, results_path, card_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; --record-only needs a built asset folder (--out)")
    results, card = json.loads(results_path.read_text()), json.loads(card_path.read_text())
    shipped = results.setdefault("shipped_file", {})
    digest, tensors = file_sha256(ckpt), weights_sha256(read_checkpoint(ckpt)["state_dict"])
    for key, now in (("file_sha256", digest), ("state_dict_sha256", tensors)):
        if shipped.get(key) not in (None, now):
            print(f"warning: {ckpt}: {key} {now} differs from the recorded {shipped[key]}; recording the file's",
                  file=sys.stderr)
        shipped[key] = now
    shipped["bytes"] = ckpt.stat().st_size
    results[REFERENCE_KEY] = reference_evaluation(ckpt, data_root, speakers, heard, cache_dir)
    card["cross_validation"] = results
    card.setdefault("source_checkpoint", {})["sha256"] = digest
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(_card_markdown(card, results), encoding="utf-8")
    return results


def summary_markdown(results: dict[str, Any]) -> str:
    """The build's numbers as Markdown: per-fold table, means, the shipped file and the machine (README source).

    Args:
        results: :func:`collect_results` after :func:`write_asset` (``shipped_file`` filled in).
    """
    pct = lambda v: f"{100 * float(v):.1f}"  # noqa: E731
    lines = ["| fold | test actors | UA % | WA % | macro-F1 % | validation-selected UA % | refit epochs | checkpoint |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for f in results["folds"]:
        sel = (f.get("selected_model") or {}).get("ua")
        lines.append(f"| {f['fold']} | {', '.join(map(str, f['test_speakers']))} | {pct(f['ua'])} | {pct(f['wa'])} | "
                     f"{pct(f['macro_f1'])} | {pct(sel) if sel is not None else '–'} | "
                     f"{(f.get('refit') or {}).get('epochs', '–')} | {'`' + f['checkpoint'] + '`' if f.get('checkpoint') else 'the protocol run'} |")
    lines += ["", f"- mean ± sd over {len(results['folds'])} folds: UA {pct(results['ua_mean'])} ± {pct(results['ua_sd'])} %, "
              f"WA {pct(results['wa_mean'])} ± {pct(results['wa_sd'])} %, macro-F1 {pct(results['macro_f1_mean'])} ± "
              f"{pct(results['macro_f1_sd'])} %"]
    if "selected_model_ua_mean" in results:
        lines.append(f"- validation-selected models (before the refit): UA {pct(results['selected_model_ua_mean'])} ± "
                     f"{pct(results['selected_model_ua_sd'])} %")
    walls = [f["wall_time_s"] for f in results["folds"] if f.get("wall_time_s") is not None]
    if walls:
        lines.append(f"- train.py wall time per fold: {min(walls):.0f}-{max(walls):.0f} s "
                     f"(frozen-feature extraction per fold: {', '.join(str(f.get('extract_s')) for f in results['folds'])} s)")
    if results.get("build_wall_s") is not None:
        lines.append(f"- whole build wall time: {results['build_wall_s']:.0f} s")
    shipped = results.get("shipped_file") or {}
    if shipped:
        lines.append(f"- shipped: {results['shipped']} File `ser_lightning/assets/default/model.ckpt`: "
                     f"{shipped['bytes']:,} bytes, {shipped['tensors']} tensors, {shipped['parameters']:,} parameters "
                     f"({'head only' if shipped['head_only'] else 'full'})")
        lines.append(f"- shipped tensors SHA-256 (`state_dict_sha256`): `{shipped['state_dict_sha256']}`")
        lines.append(f"- shipped file SHA-256: `{shipped['file_sha256']}`")
        enc = shipped.get("frozen_encoder")
        if enc:
            pkg = enc.get("package") or {}
            lines.append(f"- frozen encoder (not in the file): {enc['parameters']:,} parameters in {enc['tensors']} "
                         f"tensors from model.pretrained={enc['pretrained']} "
                         f"({pkg.get('name', '?')} {pkg.get('version', '?')}), SHA-256 `{enc['weights_sha256']}`")
    ref = results.get(REFERENCE_KEY)
    if ref:
        recall = ", ".join(f"{c} {100 * r:.1f}" for c, r in ref["per_class_recall"].items())
        lines.append(f"- per-class recall % on {ref['clip_set']['name']} ({ref['n']} clips, "
                     f"{'heard' if ref['clip_set']['heard_in_training'] else 'never heard'} in training): {recall}; "
                     f"UA {pct(ref['ua'])} %")
    m = results.get("machine") or {}
    lines += [f"- built {results.get('built_at')} on {m.get('cpu')} ({m.get('cpu_count')} cores, OMP_NUM_THREADS="
              f"{m.get('OMP_NUM_THREADS')}, torch {m.get('torch')}, Lightning {m.get('lightning')}, Python "
              f"{m.get('python')}, {m.get('platform')})",
              f"- command: `{results['command']}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--overrides", nargs="*", default=[], help="train.py overrides of the default model")
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "build_default_model", help="fold runs")
    ap.add_argument("--out", type=Path, default=REPO / "ser_lightning" / "assets" / "default", help="asset folder")
    ap.add_argument("--ship-fold", type=int, default=0, choices=range(N_FOLDS), help="fold whose model ships")
    ap.add_argument("--from-work", action="store_true", help="folds already trained in --work: only build the asset")
    ap.add_argument("--dry-run", action="store_true", help="print the training commands and stop")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads of each fold run (OMP_NUM_THREADS; 1 gives bit-identical rebuilds)")
    ap.add_argument("--record-only", action="store_true",
                    help="no training, the shipped file unchanged: write its SHA-256 and its per-class recall on the "
                         "reference clips into cv_results.json and both cards of --out")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="data root holding RAVDESS for the reference clips (default: $SER_DATA_DIR)")
    ap.add_argument("--reference-speakers", nargs="+", default=list(REFERENCE_SPEAKERS),
                    help="speakers of the reference clip set (default: RAVDESS actors 1-4)")
    ap.add_argument("--reference-heard", choices=("auto", "yes", "no"), default="auto",
                    help="whether the shipped model heard the reference speakers in training or validation "
                         "(auto: from the split stored in the checkpoint)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="decode cache of the reference evaluation")
    ap.add_argument("--all-data", action="store_true",
                    help=f"train one model on every clip of {', '.join(ALL_DATA_CORPORA)} (data.split=all) and ship it; "
                         "its numbers are the development protocol's (--protocol-results)")
    ap.add_argument("--protocol-results", type=Path, default=None,
                    help="with --all-data: the recipe's benchmarks/results/xcorpus_<name>.json")
    ap.add_argument("--epochs", type=int, default=None,
                    help="with --all-data: epochs of the final model (default: the median of the protocol folds' refit epochs)")
    args = ap.parse_args(argv)
    work = args.work.expanduser().resolve()
    out = args.out.expanduser().resolve()
    heard = {"auto": None, "yes": True, "no": False}[args.reference_heard]

    def record() -> dict[str, Any]:
        root = args.data_root or os.environ.get("SER_DATA_DIR")
        if not root:
            raise SystemExit("the reference clips need RAVDESS: set SER_DATA_DIR or --data-root")
        return record_reference(out, Path(root).expanduser(), args.reference_speakers, heard, args.cache_dir)

    if args.record_only:
        results = record()
        ref = results[REFERENCE_KEY]
        print(reference_markdown(ref) + f"\nwrote {out / 'cv_results.json'}, model.card.json, MODEL_CARD.md "
              f"(file unchanged, SHA-256 {ref['checkpoint_sha256']})")
        return 0
    if args.all_data:
        if not args.protocol_results:
            raise SystemExit("--all-data needs --protocol-results (the recipe's benchmarks/results/xcorpus_<name>.json)")
        protocol = json.loads(args.protocol_results.read_text())
        epochs = args.epochs or protocol_epochs(protocol)
        commands = [[sys.executable, str(REPO / "train.py"), *all_data_overrides(args.overrides, epochs, work)]]
    else:
        commands = [[sys.executable, str(REPO / "train.py"), *fold_overrides(args.overrides, k, work)]
                    for k in range(N_FOLDS)]
    prefix = f"OMP_NUM_THREADS={args.threads} MKL_NUM_THREADS={args.threads} "
    if args.dry_run:
        print("\n".join(prefix + shlex.join(c) for c in commands))
        return 0
    build_wall_s = None
    if args.threads < 1:
        raise ValueError(f"--threads={args.threads} must be at least 1")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    if not args.from_work:
        start = time.perf_counter()
        for k, cmd in enumerate(commands):
            print(f"{'final' if args.all_data else f'fold {k}'}: {prefix}{shlex.join(cmd)}", flush=True)
            subprocess.run(cmd, cwd=REPO, check=True, env=env)
        build_wall_s = round(time.perf_counter() - start, 1)
    elif (work / "cv_results.json").is_file():  # the training's wall time, from the build that trained the folds
        build_wall_s = json.loads((work / "cv_results.json").read_text()).get("build_wall_s")
    if args.all_data:
        results = all_data_results(protocol, work, args.overrides, epochs, args.threads)
        ship = work / "final" / "checkpoints" / "final.ckpt"
    else:
        results = collect_results(work, args.overrides, args.ship_fold, args.threads)
        ship = fold_checkpoint(work / f"fold{args.ship_fold}",
                               json.loads((work / f"fold{args.ship_fold}" / "metrics.json").read_text()))
    results["build_wall_s"] = build_wall_s
    paths = write_asset(ship, results, out)
    results = record()
    (work / "cv_results.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = summary_markdown(results)
    (work / "summary.md").write_text(summary, encoding="utf-8")
    print(summary + f"\nwrote {paths['ckpt']}, {paths['card_json'].name}, {paths['card_md'].name}, "
          f"{paths['cv_results'].name}; summary {work / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
