"""Validation of network settings shared by the model modules (errors name ``model.<key>``)."""

from __future__ import annotations


def int_list(value, key: str, length: int | None = None) -> list[int]:
    """Positive integers from a list setting.

    Args:
        value: The setting (any sequence of numbers).
        key: Setting name, used in the message as ``model.<key>``.
        length: Required length, or ``None`` for any non-empty list.

    Returns:
        The values as ``int``.

    Raises:
        ValueError: not a list of positive integers (of the required length).
    """
    try:
        out = [int(v) for v in value]
    except TypeError:
        raise ValueError(f"model.{key}={value!r} must be a list of positive integers") from None
    if not out or min(out) < 1 or (length is not None and len(out) != length):
        n = f"{length} " if length is not None else ""
        raise ValueError(f"model.{key}={out} must be a non-empty list of {n}positive integers")
    return out


def positive_int(value, key: str) -> int:
    """A positive integer setting (e.g. a layer width or count).

    Args:
        value: The setting.
        key: Setting name, used in the message as ``model.<key>``.

    Returns:
        The value as ``int``.

    Raises:
        ValueError: below 1, naming ``model.<key>``.
    """
    if int(value) < 1:
        raise ValueError(f"model.{key}={value} must be a positive integer")
    return int(value)


def dropout_prob(p: float, key: str = "dropout") -> float:
    """A dropout probability in [0, 1).

    Raises:
        ValueError: outside [0, 1), naming ``model.<key>``.
    """
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"model.{key}={p} must be in [0, 1)")
    return float(p)
