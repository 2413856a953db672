"""Build the default model shipped with the package: train the 6 folds, ship one, write both model cards.

What it does, from one set of ``train.py`` overrides (the default model's configuration):

1. Trains one model per speaker-independent fold of RAVDESS (``data.split=kfold data.n_folds=6``,
   test actors 1–4, 5–8, …, 21–24; ``data.fold=0..5``), each in ``<work>/fold<k>/`` with
   ``train.py``'s own outputs (``metrics.json`` holds the fold's test UA / WA / macro-F1).
2. Writes ``<work>/cv_results.json`` (protocol, per-fold results, the command) — the ``results=``
   file of ``export.py``.
3. Ships fold ``--ship-fold``'s best checkpoint (its test actors were never heard in training, so
   its fold result is an honest estimate for it): copied without the optimiser state to
   ``ser_lightning/assets/default/model.ckpt``, with ``model.card.json`` (machine-readable) and
   ``MODEL_CARD.md`` (for people) beside it. Replacing the shipped model is rerunning this script.

The training is on the CPU with a fixed seed, so anyone with RAVDESS can rebuild the weights::

    OMP_NUM_THREADS=2 SER_DATA_DIR=/path/to/data python -m benchmarks.build_default_model \\
        --overrides model=<encoder> trainer.max_epochs=30 seed=42
    python -m benchmarks.build_default_model --dry-run --overrides model=mfcc_cnn   # print the commands only

``--from-work DIR`` skips training and builds the asset from folds already trained in ``DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
N_FOLDS = 6
#: Checkpoint entries the shipped file keeps (the optimiser and loop state are for resuming training only).
KEEP_KEYS = ("state_dict", "hyper_parameters", "datamodule_hyper_parameters", "pytorch-lightning_version",
             "epoch", "global_step")


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


def collect_results(work: Path, overrides: list[str], ship_fold: int) -> dict[str, Any]:
    """The cross-validation results of the trained folds (the ``results=`` file of ``export.py``).

    Raises:
        FileNotFoundError: a fold's ``metrics.json`` is missing (that fold did not finish).
    """
    folds = []
    for k in range(N_FOLDS):
        path = work / f"fold{k}" / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: fold {k} has no test metrics (did its training finish?)")
        m = json.loads(path.read_text())
        folds.append({"fold": k, "test_speakers": test_actors(k), "ua": m["ua"], "wa": m["wa"],
                      "macro_f1": m["macro_f1"], "n": m.get("n")})
    command = "python -m benchmarks.build_default_model --overrides " + " ".join(shlex.quote(o) for o in overrides)
    return {"protocol": f"Speaker-independent {N_FOLDS}-fold cross-validation on the RAVDESS speech clips: each fold "
                        "tests on 4 actors (1-4, 5-8, ..., 21-24) never heard in training; 4 of the other 20 actors "
                        "validate (early stopping and checkpoint selection), 16 train.",
            "folds": folds, "ua_mean": statistics.fmean(f["ua"] for f in folds),
            "ua_sd": statistics.pstdev(f["ua"] for f in folds),
            "shipped": f"the model of fold {ship_fold} (test actors {test_actors(ship_fold)}; its test UA "
                       f"{100 * folds[ship_fold]['ua']:.1f} %).",
            "command": command}


def slim_checkpoint(src: Path, dst: Path) -> None:
    """Copy a ``train.py`` checkpoint without its optimiser/loop state (all that prediction and ``eval.py`` need)."""
    import torch

    from ser_lightning.inference.checkpoint import read_checkpoint

    full = read_checkpoint(src)
    torch.save({k: full[k] for k in KEEP_KEYS if k in full}, dst)


def write_asset(ckpt: Path, results: dict[str, Any], out: Path) -> dict[str, Path]:
    """Install ``ckpt`` as the shipped default with both model cards.

    Args:
        ckpt: The chosen fold's best checkpoint.
        results: :func:`collect_results`.
        out: The asset folder (``ser_lightning/assets/default``).

    Returns:
        ``{"ckpt", "card_json", "card_md"}`` paths.
    """
    from ser_lightning.inference.card import model_card, model_card_markdown, training_summary
    from ser_lightning.inference.checkpoint import load_checkpoint, stored_datamodule_hparams
    from ser_lightning.inference.default_model import DEFAULT_MODEL_FILE

    out.mkdir(parents=True, exist_ok=True)
    dst = out / DEFAULT_MODEL_FILE
    slim_checkpoint(ckpt, dst)
    classifier, audio_cfg = load_checkpoint(dst)  # the shipped file loads (weights-only)
    card = model_card(classifier, audio_cfg, dst)
    card["source_checkpoint"]["path"] = f"ser_lightning/assets/default/{DEFAULT_MODEL_FILE}"
    card["training_data"] = training_summary(stored_datamodule_hparams(dst))
    card["cross_validation"] = results
    card["files"] = {"checkpoint": DEFAULT_MODEL_FILE}
    paths = {"ckpt": dst, "card_json": out / "model.card.json", "card_md": out / "MODEL_CARD.md"}
    paths["card_json"].write_text(json.dumps(card, indent=2) + "\n")
    paths["card_md"].write_text(model_card_markdown(card, results), encoding="utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--overrides", nargs="*", default=[], help="train.py overrides of the default model")
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "build_default_model", help="fold runs")
    ap.add_argument("--out", type=Path, default=REPO / "ser_lightning" / "assets" / "default", help="asset folder")
    ap.add_argument("--ship-fold", type=int, default=0, choices=range(N_FOLDS), help="fold whose model ships")
    ap.add_argument("--from-work", action="store_true", help="folds already trained in --work: only build the asset")
    ap.add_argument("--dry-run", action="store_true", help="print the training commands and stop")
    args = ap.parse_args(argv)
    commands = [[sys.executable, str(REPO / "train.py"), *fold_overrides(args.overrides, k, args.work)]
                for k in range(N_FOLDS)]
    if args.dry_run:
        print("\n".join(shlex.join(c) for c in commands))
        return 0
    if not args.from_work:
        for k, cmd in enumerate(commands):
            print(f"fold {k}: {shlex.join(cmd)}", flush=True)
            subprocess.run(cmd, cwd=REPO, check=True)
    results = collect_results(args.work, args.overrides, args.ship_fold)
    (args.work / "cv_results.json").write_text(json.dumps(results, indent=2) + "\n")
    best = args.work / f"fold{args.ship_fold}" / "checkpoints" / "best.ckpt"
    if not best.is_file():
        raise FileNotFoundError(f"{best}: fold {args.ship_fold}'s best checkpoint is missing")
    paths = write_asset(best, results, args.out)
    digest = hashlib.sha256(paths["ckpt"].read_bytes()).hexdigest()
    print(f"UA {100 * results['ua_mean']:.1f} ± {100 * results['ua_sd']:.1f} % over {N_FOLDS} folds; shipped "
          f"{paths['ckpt']} ({paths['ckpt'].stat().st_size / 1e6:.1f} MB, sha256 {digest[:12]}…), "
          f"{paths['card_json'].name}, {paths['card_md'].name}")
    shutil.copy(args.work / "cv_results.json", args.out / "cv_results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
