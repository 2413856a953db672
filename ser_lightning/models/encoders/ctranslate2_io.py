"""Reader for CTranslate2's binary model file (``model.bin``), without CTranslate2 itself.

The layout is the one written by ``ctranslate2/specs/model_spec.py`` (``ModelSpec._serialize``),
binary version 6, all integers little-endian:

* ``uint32`` binary version; string spec name; ``uint32`` spec revision;
* ``uint32`` number of variables, then per variable: string name, ``uint8`` rank, ``rank``
  ``uint32`` dimensions, ``uint8`` dtype id (0 float32, 1 int8, 2 int16, 3 int32, 4 float16,
  5 bfloat16), ``uint32`` byte count, the raw bytes (row-major);
* ``uint32`` number of aliases, then per alias: string alias, string target variable name.

A *string* is a ``uint16`` length (bytes including a terminating NUL), the UTF-8 bytes, the NUL.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: CTranslate2 dtype id → torch dtype (``model_spec._dtype_to_type_id`` order).
_DTYPES: tuple[torch.dtype, ...] = (
    torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16,
)
#: Binary versions whose layout this reader knows (version 6 adds nothing before the variables
#: that version 5 lacks; both write name, revision, variables, aliases).
SUPPORTED_VERSIONS = (5, 6)


@dataclass
class CT2Model:
    """The variables of one CTranslate2 model file.

    Attributes:
        spec_name: The model specification's name, e.g. ``WhisperSpec``.
        revision: The specification's revision number.
        binary_version: The file format version.
        variables: Variable name (``/``-separated scopes, e.g. ``encoder/conv1/weight``) →
            tensor in its stored dtype; aliases resolve to the same tensor object.
    """

    spec_name: str
    revision: int
    binary_version: int
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str]


class DigestMismatch(ValueError):
    """A model file whose SHA-256 is not the expected one (:func:`read_ctranslate2_model`)."""


class _Cursor:
    """Sequential little-endian reads from a bytes buffer, naming the file in every error."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = memoryview(data), 0, path  # slices are views, not copies

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: truncated CTranslate2 model file (wanted {n} bytes at "
                             f"offset {self.pos}, file has {len(self.data)})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = self.take(self.unpack("H"))
        if not raw or raw[-1] != 0:
            raise ValueError(f"{self.path}: malformed string at offset {self.pos} (no terminating NUL)")
        return bytes(raw[:-1]).decode("utf-8")


def read_ctranslate2_model(path: str | Path, expected_sha256: str | None = None,
                           keep: Callable[[str], bool] | None = None) -> CT2Model:
    """Read every variable of a CTranslate2 ``model.bin``.

    Args:
        path: The ``model.bin`` file, or the model directory holding it.
        expected_sha256: When given, the file's SHA-256 (hex) must be this; it is computed on the bytes
            read for parsing, so the file is read from disk once.
        keep: When given, only the variables whose name it accepts (and aliases of them) are copied out of the
            file, e.g. a Whisper model's ``encoder/...`` (the decoder's tensors are then never copied); every
            variable's header is still checked.

    Returns:
        The spec name, revision, format version and variables (stored dtype, CPU tensors).

    Raises:
        FileNotFoundError: no such file.
        DigestMismatch: the file's SHA-256 is not ``expected_sha256`` (a ``ValueError``).
        ValueError: an unsupported binary version, an unknown dtype id, a byte count that does not
            match the shape, or a truncated file (the message names the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"CTranslate2 model file not found: {path}")
    data = path.read_bytes()
    if expected_sha256 is not None and (digest := hashlib.sha256(data).hexdigest()) != expected_sha256.lower():
        raise DigestMismatch(f"{path}: SHA-256 {digest} is not the expected {expected_sha256.lower()}")
    cur = _Cursor(data, path)
    version = cur.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported "
                         f"(this reader knows {SUPPORTED_VERSIONS})")
    spec_name = cur.string()
    revision = cur.unpack("I")
    variables: dict[str, torch.Tensor] = {}
    skipped: set[str] = set()
    for _ in range(cur.unpack("I")):
        name = cur.string()
        shape = [cur.unpack("I") for _ in range(cur.unpack("B"))]
        type_id = cur.unpack("B")
        if type_id >= len(_DTYPES):
            raise ValueError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
        dtype = _DTYPES[type_id]
        nbytes = cur.unpack("I")
        expected = int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
        if nbytes != expected:
            raise ValueError(f"{path}: variable {name!r} has {nbytes} bytes, shape {shape} "
                             f"of {dtype} needs {expected}")
        if keep is not None and not keep(name):
            cur.take(nbytes)
            skipped.add(name)
            continue
        raw = bytearray(cur.take(nbytes))  # writable copy: torch.frombuffer needs one
        tensor = torch.frombuffer(raw, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
        variables[name] = tensor.reshape(shape)
    aliases: dict[str, str] = {}
    for _ in range(cur.unpack("I")):
        alias, target = cur.string(), cur.string()
        if target in skipped:
            continue
        aliases[alias] = target
        if target not in variables:
            raise ValueError(f"{path}: alias {alias!r} points to missing variable {target!r}")
        variables[alias] = variables[target]
    return CT2Model(spec_name=spec_name, revision=revision, binary_version=version, variables=variables,
                    aliases=aliases)
