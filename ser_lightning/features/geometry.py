"""Spectrogram geometry for a fixed network input size (report 003 §3.4.2, "Dimension Adjustment").

Report 003 (Berhoff & Lu, "Efficient Speech Emotion Classification Using Transfer Learning")
generates spectrograms that already have the backbone's input size instead of resizing a
differently shaped one: the height is the number of mel bands, the width is set through the hop
length. Its eq. 1–3 assume a non-centred STFT::

    frames = (sample_rate · duration − n_fft) / hop + 1                          (1)
    hop    = (sample_rate · duration − n_fft) / (frames − 1)                     (2)
    hop    = ceil((sample_rate · duration − n_fft) / (frames − 1)) + 3            (3, empirical)

Our frontends (:mod:`ser_lightning.features.frontend`) use torchaudio's *centred* STFT, which pads
``n_fft // 2`` samples on both sides, so there ``frames = num_samples // hop + 1`` does not depend on
``n_fft`` at all. The exact counterpart of eq. 2 for that convention is::

    hop = floor(num_samples / (frames − 1))

the largest hop whose frame count is still ≥ the target, i.e. the closest count from above. The
report's empirical "+ 3" of eq. 3 is not needed: at its 24,414 Hz × 2.618 s with n_fft 2048,
eq. 3 gives hop 281, i.e. 221 frames non-centred or 228 frames centred (torchaudio's default)
for a 224 target, while the formula above gives hop 286 and exactly 224 frames. Whatever is left
over (rarely more than a frame) is absorbed by the backbone's final small bilinear resize
(:class:`ser_lightning.models.timm_backbones.TimmBackbone`).
"""

from __future__ import annotations

import math
import warnings


def spectrogram_geometry(
    sample_rate: int,
    duration_s: float,
    n_fft: int,
    target_frames: int,
    target_bins: int,
) -> dict[str, int]:
    """Mel bands and hop length giving a ``target_bins × target_frames`` spectrogram.

    Args:
        sample_rate: Waveform sample rate in Hz (``features.sample_rate``).
        duration_s: Clip length in seconds (``data.duration_s``); the clip has
            ``round(sample_rate · duration_s)`` samples.
        n_fft: FFT size in samples (``features.n_fft``); bounds the number of mel bands.
        target_frames: Wanted number of STFT frames (width, ``model.input_size[1]``).
        target_bins: Wanted number of mel bands (height, ``model.input_size[0]``).

    Returns:
        ``{"n_mels": target_bins, "hop_length": hop, "frames": frames}`` where ``hop`` is the
        largest hop whose centred-STFT frame count ``num_samples // hop + 1`` is ≥
        ``target_frames`` and ``frames`` is that count (equal to the target unless the clip is so
        short that the hop has to be tiny).

    Raises:
        ValueError: naming the setting, for a non-positive rate, duration or FFT size, fewer than
            2 target frames or fewer than 1 target bin, more mel bands than the
            ``n_fft // 2 + 1`` FFT bins (suggesting a larger ``features.n_fft``), or a clip with
            fewer than ``target_frames − 1`` samples.

    Example:
        >>> spectrogram_geometry(16000, 3.0, 1024, target_frames=224, target_bins=224)
        {'n_mels': 224, 'hop_length': 215, 'frames': 224}
    """
    if sample_rate <= 0:
        raise ValueError(f"features.sample_rate={sample_rate} must be a positive number of Hz")
    if duration_s <= 0:
        raise ValueError(f"data.duration_s={duration_s} must be a positive number of seconds")
    if n_fft <= 0:
        raise ValueError(f"features.n_fft={n_fft} must be a positive number of samples")
    if target_frames < 2:
        raise ValueError(f"model.input_size width {target_frames} must be at least 2 frames")
    if target_bins < 1:
        raise ValueError(f"model.input_size height {target_bins} must be at least 1 mel band")
    n_bins = n_fft // 2 + 1
    if target_bins > n_bins:
        need = 2 * (target_bins - 1)
        raise ValueError(
            f"model.input_size height {target_bins} (= features.n_mels) exceeds the n_fft // 2 + 1 = "
            f"{n_bins} FFT bins of features.n_fft={n_fft}; set features.n_fft >= {need} "
            f"(e.g. {1 << (need - 1).bit_length()}) or a smaller model.input_size"
        )
    num_samples = round(sample_rate * duration_s)
    hop = num_samples // (target_frames - 1)
    if hop < 1:
        raise ValueError(
            f"data.duration_s={duration_s} at features.sample_rate={sample_rate} gives {num_samples} samples, "
            f"too few for {target_frames} frames (model.input_size width); lengthen the clips or narrow the input"
        )
    frames = num_samples // hop + 1
    if hop > n_fft:
        warnings.warn(
            f"hop_length={hop} > features.n_fft={n_fft}: consecutive STFT windows leave samples out; "
            f"consider features.n_fft >= {hop}",
            stacklevel=2,
        )
    return {"n_mels": int(target_bins), "hop_length": int(hop), "frames": int(frames)}


def report003_hop_length(sample_rate: int, duration_s: float, n_fft: int, target_frames: int) -> int:
    """Report 003's empirical eq. 3 (non-centred STFT), for comparison only.

    Returns:
        ``ceil((sample_rate · duration_s − n_fft) / (target_frames − 1)) + 3``.
    """
    return math.ceil((round(sample_rate * duration_s) - n_fft) / (target_frames - 1)) + 3
