"""The model cards of an exported model: what it needs as input, what it returns, where it came from.

``export.py`` writes two cards next to the exported files: ``<name>.card.json`` (machine-readable, also
embedded in the files; ``predict.py`` reads it back to preprocess audio the way the model was trained) and
``<name>.card.md`` (:func:`model_card_markdown`, for a person: classes, training data and its licence,
protocol and results, intended use, limitations, the EU AI Act notice).
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ser_lightning.data.audio import AudioConfig
from ser_lightning.files import sha256_file

CARD_VERSION = 1


ONNX_CARD_KEY = "ser_lightning.model_card"


TS_CARD_FILE = "model_card.json"


_sha256 = sha256_file  # the old private name


def model_card(classifier: nn.Module, audio_cfg: AudioConfig, source: str | Path | None = None) -> dict[str, Any]:
    """Model card of an exported classifier (everything needed to feed it and read its output).

    Args:
        classifier: The ``SERClassifier`` (its ``hparams`` give model, features, class names).
        audio_cfg: The audio preprocessing it was trained with.
        source: Source checkpoint path (recorded with its SHA-256).

    Returns:
        A JSON-serialisable dict: ``labels``, ``sample_rate`` (Hz), ``duration_s``,
        ``num_samples``, ``input``/``output`` specs, ``preprocessing`` (mono downmix, soxr
        resampling, ``normalize``, ``target_rms_dbfs``, ``pad_mode``, ``crop``, silence trimming,
        ``clip_length``: ``whole`` for models that pool over each clip's own length),
        ``model``/``features`` settings, ``source_checkpoint``, ``exported_at`` (UTC ISO 8601),
        library versions; ``files`` and ``parity`` are filled in by :func:`export`.
    """
    hp = classifier.hparams
    labels = list(hp["class_names"])
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "model_name": dict(hp["model"]).get("name"),
        "labels": labels,
        "n_classes": len(labels),
        "sample_rate": audio_cfg.sample_rate,
        "duration_s": audio_cfg.duration_s,
        "num_samples": audio_cfg.num_samples,
        "input": {"name": "waveform", "dtype": "float32", "shape": ["batch", audio_cfg.num_samples],
                  "units": f"mono samples at {audio_cfg.sample_rate} Hz, after preprocessing"},
        "output": {"name": "probabilities", "dtype": "float32", "shape": ["batch", len(labels)],
                   "units": "softmax class probabilities in label order"},
        "preprocessing": {"downmix": "mean of channels", "resample": "soxr HQ",
                          "normalize": audio_cfg.normalize, "target_rms_dbfs": audio_cfg.target_rms_dbfs,
                          "trim_silence": audio_cfg.trim_silence, "trim_db": audio_cfg.trim_db,
                          "pad_mode": audio_cfg.pad_mode, "crop": audio_cfg.crop,
                          "clip_length": audio_cfg.clip_length},
        "model": dict(hp["model"]),
        "features": dict(hp["features"]),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__},
    }
    if source is not None:
        src = Path(source).expanduser().resolve()
        card["source_checkpoint"] = {"path": str(src), "sha256": _sha256(src) if src.is_file() else None}
    return card


def audio_config_from_card(card: dict[str, Any]) -> AudioConfig:
    """The preprocessing recorded in a model card (see :func:`model_card`).

    Raises:
        ValueError: the card lacks ``sample_rate``/``duration_s``/``labels``.
    """
    missing = [k for k in ("sample_rate", "duration_s", "labels") if k not in card]
    if missing:
        raise ValueError(f"model card is missing {missing}")
    pre = card.get("preprocessing") or {}
    keys = ("normalize", "target_rms_dbfs", "trim_silence", "trim_db", "pad_mode", "crop", "clip_length")
    return AudioConfig(sample_rate=int(card["sample_rate"]), duration_s=float(card["duration_s"]),
                       **{k: pre[k] for k in keys if k in pre})


# ---------------------------------------------------------------------------------- the card a person reads
#: Facts about training corpora that travel with the weights: licence and what the recordings are.
#: A corpus not listed here is named in the card with "licence not recorded: check its terms".
CORPUS_FACTS: dict[str, dict[str, str]] = {
    "ravdess": {
        "title": "RAVDESS, the Ryerson Audio-Visual Database of Emotional Speech and Song (speech part)",
        "licence": "CC BY-NC-SA 4.0",
        "licence_url": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
        "citation": "Livingstone & Russo (2018), PLoS ONE 13(5): e0196391, doi:10.1371/journal.pone.0196391; "
                    "Zenodo record 1188976",
        "content": "1,440 acted utterances of two fixed English sentences by 24 professional actors "
                   "(12 female, 12 male, North American accent), 8 emotions at two intensities",
    },
    "tess": {
        "title": "TESS, the Toronto Emotional Speech Set",
        "licence": "CC BY-NC-ND 4.0",
        "licence_url": "https://creativecommons.org/licenses/by-nc-nd/4.0/",
        "citation": "Dupuis & Pichora-Fuller (2010), Toronto emotional speech set (TESS), University of Toronto, "
                    "doi:10.5683/SP2/E8H2MF",
        "content": "2,800 acted English words in the carrier phrase 'Say the word ...' by two female speakers "
                   "(aged 26 and 64), 7 emotions",
    },
    "turev": {
        "title": "TurEV-DB, the Turkish Emotion Voice Database",
        "licence": "CC BY-NC-ND 4.0",
        "licence_url": "https://creativecommons.org/licenses/by-nc-nd/4.0/",
        "citation": "Canpolat, Ormanoğlu & Zeyrek (2020), Proc. SLTU-CCURL, pp. 368-375 (repository Xeonen/TurEV-DB)",
        "content": "1,735 acted isolated Turkish words (about 1 s) by 6 speakers, 4 emotions (angry, calm, happy, sad)",
    },
}

#: The EU AI Act notice every human-readable card carries.
EU_AI_ACT_NOTICE = (
    "The EU AI Act (Regulation (EU) 2024/1689, Art. 5(1)(f)) prohibits placing on the market, putting into "
    "service or using AI systems that infer the emotions of a natural person in the areas of workplace and "
    "education institutions, except where the system is intended for medical or safety reasons. Do not use this "
    "model for those purposes; other uses of emotion recognition may be high-risk (Annex III) and carry "
    "transparency duties (Art. 50(3))."
)


def training_summary(datamodule_hparams: dict[str, Any]) -> dict[str, Any]:
    """What a card says about the training data, from a checkpoint's datamodule settings.

    Args:
        datamodule_hparams: ``SERDataModule`` hyper-parameters stored in the checkpoint
            (:func:`~ser_lightning.inference.checkpoint.stored_datamodule_hparams`).

    Returns:
        ``{"corpora", "label_set", "split", "fold", "n_folds", "seed", "licences"}``; ``licences`` maps each
        corpus to its licence (``None`` when :data:`CORPUS_FACTS` does not record it).
    """
    hp = datamodule_hparams
    corpora = [str(c) for c in (hp.get("corpora") or ["ravdess"])]
    return {"corpora": corpora, "label_set": hp.get("label_set"), "split": hp.get("split"),
            "fold": hp.get("fold"), "n_folds": hp.get("n_folds"), "seed": hp.get("seed"),
            "licences": {c: CORPUS_FACTS.get(Path(c).stem.lower(), {}).get("licence") for c in corpora}}


def _fmt_pct(v: Any) -> str:
    return f"{100 * float(v):.1f} %" if isinstance(v, (int, float)) else "–"


def _results_section(results: dict[str, Any] | None) -> list[str]:
    if not results:
        return ["Cross-validation results: **not recorded for this export.** Pass `results=PATH` to `export.py` "
                "(a JSON file with one entry per fold, as `benchmarks/build_default_model.py` writes) to fill "
                "this section.", ""]
    lines = [results.get("protocol", ""), ""] if results.get("protocol") else []
    folds = results.get("folds") or []
    if folds:
        lines += ["| fold | test speakers | UA | WA | macro-F1 |", "|---:|---|---:|---:|---:|"]
        for f in folds:
            spk = ", ".join(str(s) for s in f.get("test_speakers", [])) or "–"
            lines.append(f"| {f.get('fold', '–')} | {spk} | {_fmt_pct(f.get('ua'))} | {_fmt_pct(f.get('wa'))} "
                         f"| {_fmt_pct(f.get('macro_f1'))} |")
        for key, name in (("ua", "UA"), ("wa", "WA"), ("macro_f1", "macro-F1")):
            vals = [float(f[key]) for f in folds if isinstance(f.get(key), (int, float))]
            if vals:
                lines.append(f"{'' if key != 'ua' else chr(10)}- mean {name}: {_fmt_pct(sum(vals) / len(vals))} "
                             f"(± {100 * (statistics.stdev(vals) if len(vals) > 1 else 0.0):.1f} "
                             f"points, sample sd across {len(vals)} folds)")
        lines.append("")
    cross = results.get("cross_corpus") or []
    if cross:
        kinds = [k for k in ("plain", *sorted({k for c in cross for k in c.get("adapted", {})})) if k]
        lines += [results.get("cross_corpus_protocol", ""), "",
                  "| trained on → scored on | n | " + " | ".join(
                      "UA plain" if k == "plain" else f"UA adapted: {k} (transductive)" for k in kinds) + " |",
                  "|---|---:|" + "---:|" * len(kinds)]
        for c in cross:
            cells = [_fmt_pct(c.get("ua")) if k == "plain" else _fmt_pct((c.get("adapted") or {}).get(k)) for k in kinds]
            lines.append(f"| {c['cell']} | {c.get('n', '–')} | " + " | ".join(cells) + " |")
        lines.append("")
    if results.get("shipped"):
        lines += [f"The weights in this file: {results['shipped']}", ""]
    if results.get("built_at"):
        m = results.get("machine") or {}
        where = f" on {m.get('cpu')} ({m.get('cpu_count')} cores, torch {m.get('torch')})" if m else ""
        lines += [f"Measured {results['built_at']}{where}.", ""]
    if results.get("command"):
        lines += ["Rebuild:", "", "```bash", str(results["command"]), "```", ""]
    return lines


def model_card_markdown(card: dict[str, Any], results: dict[str, Any] | None = None) -> str:
    """The model card a person reads (Markdown), from the JSON card and the cross-validation results.

    Sections: what the model predicts, training data and its licence, protocol and results, intended use,
    limitations, the EU AI Act notice, and the technical details (input, preprocessing, files).
    The format follows Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019).

    Args:
        card: The JSON model card (:func:`model_card`, with ``training_data`` from :func:`training_summary`).
        results: Cross-validation results: ``protocol`` (text), ``folds`` (``[{"fold", "test_speakers",
            "ua", "wa", "macro_f1"}]``, fractions), optionally ``cross_corpus_protocol`` (text) and
            ``cross_corpus`` (``[{"cell", "n", "ua", "adapted": {name: ua}}]``, fractions; adapted rows are
            transductive and named so), ``shipped`` (which weights ship, text) and ``command`` (how to rebuild);
            ``None`` leaves a placeholder.

    Returns:
        The Markdown text.
    """
    labels = list(card["labels"])
    train = card.get("training_data") or {}
    corpora = train.get("corpora") or []
    name = card.get("model_name") or "model"
    lines = [f"# Model card: {name} speech emotion classifier", "",
             f"Written by ser_lightning (`export.py`, or `benchmarks/build_default_model.py` for the shipped model) on "
             f"{card.get('exported_at', 'an unknown date')}; "
             "the machine-readable card is the `.card.json` file beside this one.", "",
             "## What it predicts", "",
             f"One of {len(labels)} emotion classes for a recording of speech: " + ", ".join(f"`{c}`" for c in labels)
             + ". The answer is a probability per class (they sum to 1) for each "
             f"{card.get('duration_s')} s window at {card.get('sample_rate')} Hz, averaged over the speech windows "
             "of a file; `predict.py` and the Python API first run a voice activity detector and report "
             "recordings or windows without speech as `no speech` instead of an emotion.", "",
             "## Training data and licence", ""]
    if not corpora:
        lines += ["Training data: not recorded in the checkpoint.", ""]
    for c in corpora:
        facts = CORPUS_FACTS.get(Path(c).stem.lower())
        if facts:
            lines += [f"- **{facts['title']}**: {facts['content']}. Licence: **{facts['licence']}** "
                      f"({facts['licence_url']}); cite {facts['citation']}."]
        else:
            lines += [f"- **{c}**: licence not recorded here; check the corpus's own terms before using these weights."]
    lic = sorted({v for v in (train.get("licences") or {}).values() if v})
    if lic and any("ND" in v for v in lic):
        lines += ["", f"The weights are derived from data under {', '.join(lic)}. They are distributed for "
                  "non-commercial research and evaluation only, with attribution to every corpus above. Whether "
                  "trained weights are an adaptation of a corpus under the no-derivatives (ND) terms is not settled: "
                  "read each licence before any use beyond that, and do not redistribute modified weights."]
    elif lic:
        lines += ["", f"The weights are derived from data under {', '.join(lic)}; they are distributed under the same "
                  "terms: non-commercial use only, with attribution, and share-alike for anything built from them."]
    lines += ["", "## Protocol and results", ""]
    split = train.get("split")
    if split == "kfold":
        lines += [f"Speaker-independent {train.get('n_folds')}-fold cross-validation: each fold's test actors are "
                  "never heard in training (label set "
                  f"`{train.get('label_set')}`); this checkpoint's own test fold is {train.get('fold')}.", ""]
    elif split == "all":
        lines += [f"Trained on every clip of the corpora above (label set `{train.get('label_set')}`), for the number "
                  "of epochs the cross-validation below chose; its numbers come from that protocol, run with the same "
                  "recipe, in which every test speaker or corpus is held out.", ""]
    elif split:
        lines += [f"Split `{split}` (label set `{train.get('label_set')}`, seed {train.get('seed')}).", ""]
    lines += _results_section(results)
    if card.get("test_metrics"):
        m = card["test_metrics"]
        lines += [f"This checkpoint on its own test split ({m.get('n', '?')} clips): UA {_fmt_pct(m.get('ua'))}, "
                  f"WA {_fmt_pct(m.get('wa'))}, macro-F1 {_fmt_pct(m.get('macro_f1'))}.", ""]
    lines += ["UA: unweighted accuracy (mean per-class recall); WA: weighted accuracy (share of clips right).", "",
              "## Intended use", "",
              "Research and teaching on speech emotion recognition: comparing methods, studying what acoustic cues "
              "a model uses, demonstrations on acted speech. The output says which acted emotion category a "
              "recording sounds most like to this model, nothing more.", "",
              "## Limitations", "",
              ("- Trained on acted English speech from 24 actors reading two fixed sentences in a studio: "
               "spontaneous speech, other languages, accents, ages, microphones and noise are outside what it saw."
               if {Path(c).stem.lower() for c in corpora} <= {"ravdess"} else
               f"- Trained on {', '.join(corpora) or 'the corpora above'} only: speech unlike those recordings "
               "(spontaneous speech, other languages, accents, microphones, noise) is outside what it saw."),
              "- Accuracy drops on other corpora and languages (cross-corpus results are far below the "
              "within-corpus numbers above); measure it on your own data before relying on it.",
              "- It is not a measure of a person's inner state: it classifies how a voice sounds against acted "
              "portrayals, and felt emotion often does not show in the voice, or shows differently.",
              "- Do not use it to make decisions about people.", "",
              "## EU AI Act", "", EU_AI_ACT_NOTICE, "",
              "## Technical details", "",
              f"- Input: mono waveform at {card.get('sample_rate')} Hz, {card.get('duration_s')} s windows "
              f"({card.get('num_samples')} samples); preprocessing: {json.dumps(card.get('preprocessing', {}))}.",
              f"- Network: `{json.dumps(card.get('model', {}))}`; features: `{json.dumps(card.get('features', {}))}`."]
    src = card.get("source_checkpoint") or {}
    if src:
        lines.append(f"- Source checkpoint SHA-256: `{src.get('sha256')}`.")
    enc = card.get("frozen_encoder") or {}
    if enc:
        pkg = enc.get("package") or {}
        source = f"the installed package {pkg.get('name')} {pkg.get('version')}" if pkg else f"model.pretrained={enc.get('pretrained')}"
        lines.append(f"- Encoder weights: not in the checkpoint ({enc.get('parameters')} parameters of the frozen encoder); "
                     f"they are read from {source} and must have SHA-256 `{enc.get('weights_sha256')}` (checked on loading).")
    files = card.get("files") or {}
    if files:
        lines.append("- Files: " + ", ".join(f"{k}: `{v}`" for k, v in files.items()) + ".")
    return "\n".join(lines) + "\n"
