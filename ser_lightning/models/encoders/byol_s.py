"""BYOL-S: BYOL-A's convolutional audio encoder pretrained on speech (SERAB), 512-d frames.

The network is written from its published description, not from NTT's code (which carries an
evaluation-only licence):

* Niizumi et al., "BYOL for Audio: Self-Supervised Learning for General-Purpose Audio
  Representation", IJCNN 2021, §3.3 and Fig. 3 (the "AudioNTT2020" encoder): three blocks of
  3×3 convolution (64 channels) → batch normalisation → ReLU → 2×2 max pooling on a
  ``(1, 64 mels, frames)`` log-mel input; the ``(64 channels, 8 mel bins)`` map of each remaining
  time step is flattened into a 512-d vector and passed through two fully connected layers
  (ReLU, dropout 0.3, ReLU); the utterance embedding is the temporal max plus the temporal mean.
* Scheidwasser-Clow et al., "SERAB: A multi-lingual benchmark for speech emotion recognition",
  ICASSP 2022, §3: the same network, pretrained with BYOL on AudioSet's speech subset ("BYOL-S"),
  512-d; its input statistics per corpus (``settings.py``: the log-mel mean and sd of each
  corpus; RAVDESS −10.32 / 5.00 is the fixed default here). With ``model.norm_stats=per_corpus``
  each clip is standardised with statistics computed from its own corpus instead
  (:mod:`ser_lightning.modules.norm_stats`).

The pretrained weights (MIT, 2.4 MB) ship inside this package (``ser_lightning/assets/byol_s/``,
with their licence and source) and are SHA-256-checked on load, so they work offline.

Padding: the frontend treats every clip as followed by silence and zeroes its padded frames; each
convolution block's output is zeroed beyond the clip's (pooled) length, so a clip's frames are
the same whatever the padding of its batch (in ``eval`` mode: batch normalisation in ``train``
mode computes its statistics over the whole padded batch).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ser_lightning.features.encoder_frontends import ByolLogMel, frame_mask
from ser_lightning.files import sha256_file
from ser_lightning.models.encoders.base import EncoderOutput, SpeechEncoder

#: SHA-256 of the packaged ``byol_s_d512.pth`` (SERAB's ``default512_BYOLAs64x96-…-rs42.pth``).
BYOL_S_SHA256 = "449f5d0dc6b6fa8433d5e43769097520d3bc0fdae88977a7ac29e2e72ca51b52"
_ASSET = ("assets", "byol_s", "byol_s_d512.pth")


def packaged_weights_path() -> Path:
    """Path of the BYOL-S state dict shipped inside the package.

    Raises:
        FileNotFoundError: the package was installed without its data files.
    """
    path = Path(str(resources.files("ser_lightning").joinpath(*_ASSET)))
    if not path.is_file():
        raise FileNotFoundError(f"BYOL-S weights missing from the installed package: {path} "
                                "(reinstall ser_lightning with its package data)")
    return path


#: Hex SHA-256 of a file (:func:`ser_lightning.files.sha256_file`, under its old name).
sha256_of = sha256_file


def load_byol_s_state_dict(path: str | Path | None = None, sha256: str | None = BYOL_S_SHA256) -> dict[str, torch.Tensor]:
    """Read the BYOL-S state dict, checking the file's SHA-256.

    Args:
        path: A state-dict file; ``None`` for the packaged copy.
        sha256: Expected hex digest; ``None`` skips the check (for other checkpoints of the same
            architecture, e.g. SERAB's 1024- or 2048-d ones).

    Returns:
        The state dict (CPU tensors).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the digest does not match (a corrupt or different file; the message names it).
    """
    path = packaged_weights_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BYOL-S weights not found: {path}")
    if sha256 is not None and (found := sha256_of(path)) != sha256:
        raise ValueError(f"{path}: SHA-256 {found} does not match the BYOL-S d512 weights ({sha256}); "
                         "the file is corrupt or a different checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)


class ByolSEncoder(SpeechEncoder):
    """BYOL-A "AudioNTT2020" encoder: log-mel → 3 conv blocks → per-frame MLP (module docstring).

    Parameter names follow the published checkpoint (``features.{0,1,4,5,8,9}.*``, ``fc.{0,3}.*``),
    so SERAB's state dicts load with ``strict=True``.

    Args:
        n_mels: Mel bands of the input (64 for the pretrained weights; a multiple of 8).
        d: Output width (512 for the packaged weights; SERAB also trained 1024 and 2048).
        dropout: Dropout between the two fully connected layers (0.3 in BYOL-A).
        pretrained: ``"packaged"`` (the weights shipped in this package, SHA-256-checked), a path to
            a state dict of the same shape, or ``None`` for random initialisation.
        norm_mean: Frontend standardisation mean (SERAB's RAVDESS statistic by default), used when
            :meth:`forward` gets no per-clip ``norm``.
        norm_std: Frontend standardisation standard deviation (same rule).

    Shapes:
        wave ``(batch, time)`` at 16 kHz + lengths ``(batch,)`` (+ optional per-clip statistics
        ``norm`` ``(batch, 2)``: mean, sd of its corpus's log-mel) → one hidden state
        ``(batch, frames // 8, d)`` with ``frames = time // 160 + 1``, and lengths ``(batch,)``.

    Raises:
        ValueError: ``n_mels`` not a multiple of 8, or a state dict that does not fit (strict load).
        FileNotFoundError: a ``pretrained`` path that does not exist.
    """

    num_hidden_states = 1
    takes_norm_stats = True
    #: Exports with a dynamic time axis: nothing in this forward reads a Python int from tensor values; the
    #: switch that matters is its frontend's (:class:`~ser_lightning.features.encoder_frontends.ByolLogMel`).
    shape_polymorphic = False

    def __init__(
        self,
        n_mels: int = 64,
        d: int = 512,
        dropout: float = 0.3,
        pretrained: str | None = "packaged",
        norm_mean: float = -10.32,
        norm_std: float = 5.00,
    ) -> None:
        super().__init__()
        if n_mels % 8 or n_mels <= 0:
            raise ValueError(f"ByolSEncoder: n_mels={n_mels} must be a positive multiple of 8 (three 2x2 poolings)")
        self.hidden_size = d
        self.frontend = ByolLogMel(n_mels=n_mels, norm_mean=norm_mean, norm_std=norm_std)
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(1 if i == 0 else 64, 64, kernel_size=3, padding=1), nn.BatchNorm2d(64),
                       nn.ReLU(), nn.MaxPool2d(2, stride=2)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(64 * (n_mels // 8), d), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(d, d), nn.ReLU())
        if pretrained == "packaged":
            self.load_state_dict(load_byol_s_state_dict(None), strict=True)
        elif pretrained:
            self._load(pretrained)

    def _load(self, path: str) -> None:
        state = load_byol_s_state_dict(path, sha256=None)
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"model.pretrained={path}: not a BYOL-S state dict of this shape ({err})") from None

    num_layer_groups = 4

    def layer_group(self, name: str) -> int:
        """Groups: the three convolution blocks (0–2), then the fully connected stack (3)."""
        if m := re.match(r"features\.(\d+)(\.|$)", name):
            return int(m.group(1)) // 4
        return 3 if re.match(r"fc(\.|$)", name) else 0

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None,
                norm: torch.Tensor | None = None) -> EncoderOutput:
        """Frame features ``(batch, frames // 8, d)`` and their valid counts ``(batch,)``; ``norm``
        ``(batch, 2)``: per-clip standardisation statistics (``None``: the fixed ones)."""
        x, n = self.frontend(wave, lengths, norm)  # (batch, 1, n_mels, frames)
        for i in range(0, len(self.features), 4):
            x = self.features[i:i + 4](x)
            n = n // 2
            x = x * frame_mask(n, x.shape[-1])[:, None, None, :]
        x = x.permute(0, 3, 2, 1)  # (batch, frames/8, mels/8, channels)
        x = self.fc(x.reshape(x.shape[0], x.shape[1], -1))  # (batch, frames/8, d); channel fastest
        return EncoderOutput(hidden_states=(x,), lengths=n)

    @staticmethod
    def utterance_embedding(out: EncoderOutput) -> torch.Tensor:
        """BYOL-A's clip embedding: temporal max + temporal mean over valid frames ``(batch, d)``."""
        x, mask = out.last_hidden_state, out.padding_mask()[..., None]
        mean = (x * mask).sum(1) / out.lengths.clamp(min=1)[:, None]
        peak = x.masked_fill(~mask, float("-inf")).amax(1)
        return peak + mean


def build_byol_s(pretrained: str | None = "packaged", norm_mean: float = -10.32, norm_std: float = 5.00,
                 dropout: float = 0.3) -> ByolSEncoder:
    """BYOL-S d512 from plain scalar settings (``pretrained``: ``packaged``, a path or ``None``)."""
    return ByolSEncoder(n_mels=64, d=512, dropout=dropout, pretrained=pretrained,
                        norm_mean=norm_mean, norm_std=norm_std)
