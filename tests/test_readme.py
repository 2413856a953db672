"""Every command the README shows composes against the configs (what ``--cfg job`` checks: its overrides parse and
name existing groups and keys) and calls the project's interpreter rather than a bare ``python``. The commands are
not run here (most train or need data); composing is what is checked."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import REPO

SCRIPTS = {"train.py": "train", "eval.py": "eval", "predict.py": "predict", "export.py": "export",
           "cross_corpus.py": "cross_corpus"}
# Text that marks a command as a pattern, not a command to run as written.
PATTERN = re.compile(r"\.\.\.|<the same|group=option|\[[a-z_]+=[^\]]*\||<name>|experiment=<")
COMMAND = re.compile(r"((?:\.venv/bin/)?python|torchrun|srun)\s+(?:[^`|]*?\s)?(" + "|".join(map(re.escape, SCRIPTS))
                     + r")((?:\s+[^`#\n|]*)?)")


def _blocks_and_spans(text: str) -> list[str]:
    """Shell lines of fenced ``bash`` blocks (continuations joined) and inline code spans."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += re.findall(r"`([^`\n]+)`", text)
    return lines


def readme_commands() -> list[tuple[str, str, list[str]]]:
    """``(line, config name, overrides)`` of every README command that starts a script."""
    out = []
    for line in _blocks_and_spans((REPO / "README.md").read_text()):
        code = line.split("  #")[0].split(" # ")[0]
        for m in COMMAND.finditer(code):
            if PATTERN.search(code[m.start():]):
                continue
            args = shlex.split(re.sub(r"<[^>]+>", "RUN", m.group(3)))  # <run> etc.: a path the user fills in
            out.append((m.group(0).strip(), SCRIPTS[m.group(2)], [a for a in args if a != "-m"]))
    return out


COMMANDS = readme_commands()


def test_the_readme_shows_commands():
    names = {name for _, name, _ in COMMANDS}
    assert {"train", "eval", "predict", "export"} <= names and len(COMMANDS) >= 20


@pytest.mark.parametrize(("line", "config", "overrides"), COMMANDS, ids=[c[0][:80] for c in COMMANDS])
def test_readme_command_composes(line, config, overrides):
    parsed = OverridesParser.create().parse_overrides(overrides)
    first_job = BasicSweeper.split_arguments(parsed, max_batch_size=None)[0][0]  # a sweep's first job
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config, overrides=list(first_job), return_hydra_config=True)
    assert cfg is not None


def test_readme_python_commands_use_the_project_interpreter():
    bare = [line for line, _, _ in COMMANDS if line.startswith("python ")]
    assert not bare, f"README commands calling a bare `python` (use .venv/bin/python): {bare[:5]}"
