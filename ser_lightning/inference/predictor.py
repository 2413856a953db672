"""Classify the emotion of audio files with a trained model (the library behind ``predict.py``).

``python predict.py ckpt_path=MODEL input=FILE_OR_DIR [hop_s=1.5] [trim_silence=true] [output=DIR]``

``MODEL`` is a ``train.py`` checkpoint (``.ckpt``, run with PyTorch), or a file written by
``export.py``: ``.onnx`` (run with ONNX Runtime) or ``.torchscript.pt`` (TorchScript); the
exported files read their labels and preprocessing from the model card next to them
(``<name>.card.json``) or, without it, from the card embedded in the file.

Every file goes through the checkpoint's own preprocessing, built from
:mod:`ser_lightning.data.audio` (the functions that decoded the training data): any format
soundfile or PyAV (.m4a, .mp4, .webm) reads, channels averaged to mono, resampled with soxr (HQ) to the model's rate,
optionally silence-trimmed (energy-based, leading and trailing). The clip is then cut into
windows of the model's training duration, every ``hop_s`` seconds, the last window aligned with
the end of the file (so every sample is covered and no window is padded unless the whole file is
shorter than one window); each window is normalised like a training clip (peak/RMS) and a file
shorter than a window is padded the training way. A file's label is the arg-max of the mean of its
windows' probabilities. For a file no longer than one window this is exactly
:func:`ser_lightning.data.audio.load_clip`, i.e. what the model saw in training.

Voice activity detection (``vad.enabled=true``, the default of ``predict.py`` and the Python API;
:mod:`ser_lightning.inference.vad`, Silero VAD on the CPU) runs on each decoded file first: a window
with too little speech (``vad.min_speech_fraction``) is reported as ``status="no speech"`` with its
speech fraction instead of an emotion, the file's emotion is the mean over its speech windows, and a
file without speech (a tone, a constant signal, noise, digital silence) is ``no speech`` as a whole.
``segment=vad`` cuts a file at the detected speech segments instead of fixed windows, each reported
with its start and end in seconds.

A model trained with per-speaker normalisation (``data.speaker_norm=true``, a separate, transductive
protocol: :mod:`ser_lightning.data.speaker_norm`) needs the speaker's statistics:
``speaker_reference=[a.wav,b.wav,...]`` (or a folder) names recordings of the same speaker; their
windows' pooled encoder states give a mean and sd (:func:`speaker_reference_statistics`), and every
window to classify is standardised with them before the head. Without a reference such a model
refuses to predict; a reference given to a plain model is an error too.

Outputs (:func:`write_outputs`; ``predict.py`` also prints a table): in ``output`` (default: the run directory
``outputs/predict/<timestamp>/``) ``predictions.json`` (per file, with every window),
``predictions.csv`` (one row per file) and ``windows.csv`` (one row per window or speech segment).

Bad files (unreadable, empty, shorter than 25 ms, NaN/inf samples; all-silent without the detector) get
``status=error`` and a one-line ``error`` in every output while the other files are classified.

Exit code: 0 when at least one file was answered (classified or ``no speech``) (failures are listed in the outputs and
counted in a warning); 1 when no file could be classified, with ``strict=true`` when any file
failed, or on a configuration error (bad ``ckpt_path``, ``input``, setting, or a class in
``labels=`` the model does not have).

``labels=`` restricts the output to some classes and :func:`predict_set` adapts to a set of recordings without
labels (:mod:`ser_lightning.inference.adaptation`).

The pieces, one concept per module (this module gathers their public names):

* :mod:`~ser_lightning.inference.loading` — :func:`load_model` → :class:`LoadedModel` (checkpoint, ONNX, TorchScript);
* :mod:`~ser_lightning.inference.labels` — :func:`check_labels`;
* :mod:`~ser_lightning.inference.windows` — decoding to the model's rate, :func:`find_audio`, sliding windows;
* :mod:`~ser_lightning.inference.scheduling` — :func:`predict_files` (batches of windows across files, VAD);
* :mod:`~ser_lightning.inference.speaker_reference` — :func:`speaker_reference_statistics`;
* :mod:`~ser_lightning.inference.set_prediction` — :func:`predict_set` (label restriction, adaptation to a set);
* :mod:`~ser_lightning.inference.outputs` — :func:`write_outputs`.
"""

from ser_lightning.inference.labels import check_labels
from ser_lightning.inference.loading import (
    LoadedModel,
    _pooled_functions,
    _speaker_norm_model,
    _torch_runner,
    load_model,
)
from ser_lightning.inference.outputs import write_outputs
from ser_lightning.inference.scheduling import PredictionFailed, predict_files
from ser_lightning.inference.set_prediction import predict_set
from ser_lightning.inference.speaker_reference import SpeakerStats, speaker_reference_statistics
from ser_lightning.inference.windows import (
    AudioArray,
    SilentAudioError,
    check_hop_s,
    decode_mono,
    default_hop_s,
    find_audio,
    make_window,
    to_model_rate,
    window_length,
    window_starts,
)

__all__ = [
    "AudioArray", "LoadedModel", "PredictionFailed", "SilentAudioError", "SpeakerStats", "_pooled_functions",
    "_speaker_norm_model", "_torch_runner", "check_hop_s", "check_labels", "decode_mono", "default_hop_s",
    "find_audio", "load_model", "make_window", "predict_files", "predict_set", "speaker_reference_statistics",
    "to_model_rate", "window_length", "window_starts", "write_outputs",
]
