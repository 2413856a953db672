"""The commands: ``ser-train``, ``ser-eval``, ``ser-predict``, ``ser-export``, ``ser-cross-corpus``, or
``ser <command>`` / ``python -m ser_lightning <command>`` (the same), and the ``train.py`` ... scripts of a
checkout (thin aliases).

Every command is a Hydra application over the package's configs (``ser_lightning/conf``, found through
Hydra's ``pkg://`` search path, so an installed wheel works from any directory): ``key=value`` and
``group=option`` arguments, ``-m`` for sweeps, ``--cfg job`` to print the composed config. On top of Hydra:

* ``--help`` / ``-h``: what the command does and its main options (from the task's config and its comments);
  ``--hydra-help`` is Hydra's own.
* ``-v`` / ``--verbose``: ``hydra.verbose=true`` (every message and warning, DEBUG included; see
  :mod:`ser_lightning.cli.console`).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

#: The package holding the configs (Hydra's search path ``pkg://ser_lightning.conf``).
CONFIG_PACKAGE = "ser_lightning.conf"


@dataclass(frozen=True)
class Command:
    """One command.

    Attributes:
        name: The word after ``ser`` (``ser-<name>`` is its console script).
        config: Its config (``ser_lightning/conf/<config>.yaml``).
        target: ``module:function`` run with the composed config.
        summary: One line: what it does.
    """

    name: str
    config: str
    target: str
    summary: str


COMMANDS = {c.name: c for c in (
    Command("train", "train", "ser_lightning.cli.train:train",
            "Train an emotion classifier and test it on held-out speakers."),
    Command("eval", "eval", "ser_lightning.cli.eval:evaluate",
            "Evaluate a checkpoint (or an ensemble) on a split, a corpus or a manifest; writes metrics.json, "
            "report.md and predictions.csv (one row per clip)."),
    Command("predict", "predict", "ser_lightning.cli.predict:predict",
            "Classify the emotion of audio files or folders with a trained model (default: the shipped one); "
            "writes predictions.json/.csv and windows.csv and prints a table."),
    Command("export", "export", "ser_lightning.cli.export:export",
            "Export a checkpoint to ONNX and/or TorchScript, check parity, write the model cards."),
    Command("cross-corpus", "cross_corpus", "ser_lightning.cli.cross_corpus:run_cross_corpus",
            "Train on some corpora and score every other one (or leave one corpus out)."),
)}


def config_dir() -> Path:
    """The folder of the package's configs (``ser_lightning/conf``)."""
    return Path(str(resources.files(CONFIG_PACKAGE)))


def config_path() -> str:
    """Hydra's ``config_path`` of the package's configs: ``pkg://ser_lightning.conf`` (inside an installed wheel as in
    a checkout)."""
    return "pkg://" + CONFIG_PACKAGE


def _option_lines(config: str) -> tuple[list[str], list[str], list[str]]:
    """The header comment, the main options (top-level ``key: value  # comment``) and the groups of a config."""
    text = (config_dir() / f"{config}.yaml").read_text(encoding="utf-8").splitlines()
    header = []
    for line in text:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").rstrip())
    options, groups, in_defaults, above, parent = [], [], False, [], None
    for line in text:
        comments, above = above, [*above, line.lstrip("# ").rstrip()] if line.startswith("#") else []
        if line.startswith("defaults:"):
            in_defaults = True
            continue
        if in_defaults:
            m = re.match(r"\s+-\s+([\w/]+):\s*(\S+)", line)
            if m and m.group(1) not in ("hydra", "paths"):
                folder = config_dir() / m.group(1)
                choices = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
                groups.append(f"  {m.group(1)}={m.group(2)}" + (f"  (one of: {', '.join(choices)})" if choices else ""))
            if line and not line.startswith((" ", "#")):
                in_defaults = False
            else:
                continue
        m = re.match(r"^(\w+):\s*(.*?)\s*(?:#\s*(.*))?$", line)
        if m:
            parent = m.group(1) if not m.group(2) else None  # a mapping: its direct keys are listed as parent.key
        child = re.match(r"^  (\w+):\s*(.*?)\s*(?:#\s*(.*))?$", line)
        if child and parent and parent not in ("defaults", "hydra") and child.group(2):
            m, key = child, f"{parent}.{child.group(1)}"
        elif m:
            key = m.group(1)
        else:
            continue
        if key not in ("task_name", "defaults", "hydra") and m.group(2):
            note = m.group(3) or (comments[0] if comments else "")  # the inline comment, else the comment block above
            options.append(f"  {key}={m.group(2)}" + (f"  # {note}" if note else ""))
    return header, options, groups


def help_text(command: Command, prog: str) -> str:
    """``--help`` of a command: what it does, usage, main options, groups, and the Hydra flags."""
    header, options, groups = _option_lines(command.config)
    parts = [f"{prog}: {command.summary}", "", f"usage: {prog} [key=value ...] [group=option ...] [-v] [-m]"]
    if header:
        parts += ["", *[f"  {h}" for h in header]]
    if options:
        parts += ["", "main options (key=default):", *options]
    if groups:
        parts += ["", "config groups (group=default):", *groups]
    parts += ["", "also: -v/--verbose (all messages, = hydra.verbose=true), -m (sweep), --cfg job (print the config), "
              "--hydra-help (Hydra's own help)", f"configs: {config_dir()}"]
    return "\n".join(parts) + "\n"


def _task(command: Command) -> Callable[[Any], Any]:
    module, fn = command.target.split(":")
    return getattr(importlib.import_module(module), fn)


def run(name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> Any:
    """Run command ``name`` with Hydra over the package's configs.

    Args:
        name: A key of :data:`COMMANDS`.
        argv: Its arguments (``None``: ``sys.argv[1:]``).
        prog: The name shown in ``--help`` (``None``: ``ser-<name>``).

    Returns:
        What the task returns (``train``: the optimised metric, for Hydra sweepers).
    """
    import hydra

    from ser_lightning.cli import register_resolvers

    command = COMMANDS[name]
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:
        script = Path(sys.argv[0]).name
        sys.stdout.write(help_text(command, prog or (f"python {script}" if script.endswith(".py") else f"ser-{name}")))
        return None
    args = ["hydra.verbose=true" if a in ("-v", "--verbose") else a for a in args]
    register_resolvers()

    def task_main(cfg):
        from ser_lightning.cli.console import setup_console

        task = _task(command)  # train, eval, ...: imports Lightning, whose console handler setup_console removes
        setup_console()
        try:
            return user_errors_as_one_line(task, cfg)
        except BaseException:
            _remove_if_empty(cfg)
            raise

    sys.argv[:] = [sys.argv[0], *args]
    return hydra.main(config_path=config_path(), config_name=command.config, version_base="1.3")(task_main)()


def _remove_if_empty(cfg: Any) -> None:
    """Remove the run directory of a failed run when nothing was written into it (``predict``, ``export``: no
    ``.hydra/`` and no log file there), and its empty parents below the working directory."""
    from hydra.core.hydra_config import HydraConfig

    try:
        run_dir, cwd = Path(HydraConfig.get().runtime.output_dir).resolve(), Path.cwd().resolve()
        while run_dir != cwd and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # and outputs/predict/, outputs/ when this run made them and nothing else is there
            if cwd not in run_dir.parents:
                break
            run_dir = run_dir.parent
    except Exception:  # pragma: no cover - no Hydra job, or the folder is in use: leave it
        pass


USER_ERRORS = (ValueError, FileNotFoundError)


def user_errors_as_one_line(fn: Callable[[Any], Any], cfg: Any) -> Any:
    """Run ``fn(cfg)``; a user error (bad setting, missing file) becomes one line on stderr and exit 1
    (``HYDRA_FULL_ERROR=1``: the traceback instead)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return fn(cfg)
    try:
        return fn(cfg)
    except USER_ERRORS as err:
        msg = " ".join(str(err).split("\n"))
        print(f"error: {msg}", file=sys.stderr)
        raise SystemExit(1) from None


def train() -> Any:
    """``ser-train``."""
    return run("train")


def evaluate() -> Any:
    """``ser-eval``."""
    return run("eval")


def predict() -> Any:
    """``ser-predict``."""
    return run("predict")


def export() -> Any:
    """``ser-export``."""
    return run("export")


def cross_corpus() -> Any:
    """``ser-cross-corpus``."""
    return run("cross-corpus")


_COMMAND_ENV = "SER_LIGHTNING_COMMAND"


def main(argv: Sequence[str] | None = None) -> Any:
    """``ser <command> [args]`` and ``python -m ser_lightning <command> [args]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if (not args or args[0] not in COMMANDS) and os.environ.get(_COMMAND_ENV) in COMMANDS:
        # a process Lightning's DDP launcher started again as `python -m ser_lightning.__main__ <overrides>`
        args = [os.environ[_COMMAND_ENV], *args]
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = ["usage: ser <command> [key=value ...] [--help] [-v]", "", "commands:"]
        lines += [f"  {c.name:<{width}}  {c.summary}" for c in COMMANDS.values()]
        lines += ["", "ser <command> --help: what it does and its main options. The same commands: ser-train, "
                  "ser-eval, ser-predict, ser-export, ser-cross-corpus."]
        print("\n".join(lines), file=sys.stdout if args and args[0] in ("-h", "--help") else sys.stderr)
        if args and args[0] not in ("-h", "--help"):
            print(f"error: unknown command {args[0]!r}", file=sys.stderr)
        raise SystemExit(0 if args and args[0] in ("-h", "--help") else 2)
    os.environ[_COMMAND_ENV] = args[0]  # inherited by the processes a multi-device run starts again
    return run(args[0], args[1:], prog=f"ser {args[0]}")
