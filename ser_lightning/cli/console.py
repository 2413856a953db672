"""A quiet, honest console: each message once, known-harmless noise silenced where it is raised.

:func:`setup_console` runs at the start of every command (``ser-train``, ``train.py``, ...), after Hydra has
configured logging (``conf/hydra/default.yaml``: the console handler writes to stderr, so that a command's
own output on stdout, e.g. ``predict.py``'s table, is never mixed with log lines; the run's ``<task>.log``
keeps everything with timestamps). It

* removes the stderr handler that ``import lightning`` attaches to the ``lightning`` logger, which printed
  every Lightning INFO line a second time (``INFO: ...``) beside Hydra's console handler;
* drops Lightning's adverts (``💡 Tip: ... litlogger / litmodels``) and its ``GPU available`` /
  ``TPU available`` lines (:mod:`ser_lightning.hardware` logs the resolved accelerator), with a named
  :class:`logging.Filter` on the logger that emits them;
* ignores, by message and raising module, the warnings known to be harmless here: the deprecation of
  ``LeafSpec`` raised inside ``lightning/pytorch/utilities/_pytree.py`` (Lightning's code, not ours) and
  "Found N module(s) in eval mode at the start of training" (the frozen encoders of the encoder models are
  kept in eval mode on purpose).

``hydra.verbose=true`` (or ``-v`` / ``--verbose`` on the ``ser-*`` commands) keeps all of it: nothing
filtered, and DEBUG messages shown (e.g. each unreadable file as it is met).

Nothing here imports Lightning (the prediction path does not load it).
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

#: Lightning's INFO lines dropped from the console (and the log file) unless verbose: message regex → why.
LIGHTNING_NOISE = {
    r"^💡 Tip": "adverts for optional packages (litlogger, litmodels)",
    r"^(GPU|TPU) available:": "ser_lightning.hardware logs the resolved accelerator and devices",
}

#: Warnings ignored unless verbose: (message regex, raising module regex, why).
KNOWN_HARMLESS_WARNINGS = [
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree",
     "Lightning's own use of a deprecated torch API (lightning/pytorch/utilities/_pytree.py)"),
    (r"Found \d+ module\(s\) in eval mode at the start of training", r"lightning\.pytorch\.loops\.fit_loop",
     "frozen encoders are kept in eval mode on purpose"),
]

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class LightningNoiseFilter(logging.Filter):
    """Drops the Lightning records listed in :data:`LIGHTNING_NOISE`."""

    def __init__(self) -> None:
        super().__init__("ser_lightning.lightning_noise")
        self._patterns = [re.compile(p) for p in LIGHTNING_NOISE]

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record to drop."""
        msg = record.getMessage()
        return not any(p.search(msg) for p in self._patterns)


def _is_verbose() -> bool:
    """``hydra.verbose`` of the running Hydra job (``False`` outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.initialized() and bool(HydraConfig.get().verbose)
    except Exception:  # pragma: no cover - no Hydra job
        return False


def single_lightning_handlers() -> None:
    """Remove the console handlers Lightning attaches to its loggers at import, and let their records
    propagate to the root logger's (Hydra's) handlers: each Lightning message then appears once. Does
    nothing for a Lightning not yet imported (call again after importing it)."""
    for name in _LIGHTNING_LOGGERS:
        if name not in logging.Logger.manager.loggerDict:
            continue
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__):
                lg.removeHandler(h)
        lg.propagate = True


def setup_console(verbose: bool | None = None) -> None:
    """Make the console quiet and each message single (see the module docstring).

    Args:
        verbose: Keep every message and warning; ``None``: Hydra's ``hydra.verbose``.
    """
    single_lightning_handlers()
    if verbose if verbose is not None else _is_verbose():
        return
    for name in _RANK_ZERO_LOGGERS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, LightningNoiseFilter) for f in lg.filters):
            lg.addFilter(LightningNoiseFilter())
    for message, module, _why in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)
