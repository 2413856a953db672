"""Every command the README and the documentation (``docs/**/*.md``) show composes against the configs (what
``--cfg job`` checks: its overrides parse and name existing groups and keys) and calls the project's interpreter
rather than a bare ``python``. The commands are not run here (most train or need data); composing is what is
checked. Beside them: the README stays a short front page (≤ 200 lines), the docs' generated results tables match
the files in ``benchmarks/results/``, and the documentation site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

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
#: The installed commands (``ser-predict ...``, ``ser predict ...``, ``python -m ser_lightning predict ...``) and the
#: configs they compose.
INSTALLED_COMMANDS = {"train": "train", "eval": "eval", "predict": "predict", "export": "export",
                      "cross-corpus": "cross_corpus"}
_NAMES = "|".join(map(re.escape, INSTALLED_COMMANDS))
INSTALLED = re.compile(r"(?:\bser-(" + _NAMES + r")|(?:\bpython\s+-m\s+ser_lightning|\bser)\s+(" + _NAMES + r"))((?:\s+[^`#\n|]*)?)")
#: A block ``benchmarks/tables.py`` generates: it quotes the commands its results files recorded, as run.
GENERATED = re.compile(r"<!-- BEGIN TABLE [\w-]+ -->.*?<!-- END TABLE -->", re.S)
README_MAX_LINES = 200


def doc_files() -> list[Path]:
    """The README and every Markdown page of the documentation."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _blocks_and_spans(text: str) -> list[str]:
    """Shell lines of fenced ``bash`` blocks (continuations joined) and inline code spans."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += re.findall(r"`([^`\n]+)`", text)
    return lines


def commands_in(text: str) -> list[tuple[str, str, list[str]]]:
    """``(command, config name, overrides)`` of every command in ``text`` that starts a script."""
    out = []
    for line in _blocks_and_spans(text):
        code = line.split("  #")[0].split(" # ")[0]
        for m in COMMAND.finditer(code):
            if PATTERN.search(code[m.start():]):
                continue
            args = shlex.split(re.sub(r"<[^>]+>", "RUN", m.group(3)))  # <run> etc.: a path the user fills in
            out.append((m.group(0).strip(), SCRIPTS[m.group(2)], [a for a in args if a != "-m"]))
        for m in INSTALLED.finditer(code):
            if PATTERN.search(code[m.start():]):
                continue
            args = shlex.split(re.sub(r"<[^>]+>", "RUN", m.group(3)))
            if {"--help", "-h"} & set(args):
                continue
            out.append((m.group(0).strip(), INSTALLED_COMMANDS[m.group(1) or m.group(2)],
                        ["hydra.verbose=true" if a in ("-v", "--verbose") else a for a in args if a != "-m"]))
    return out


def doc_commands() -> list[tuple[str, str, str, list[str], bool]]:
    """``(file, command, config name, overrides, generated)`` of every command in the README and ``docs/``;
    ``generated``: quoted from a results file inside a generated table block."""
    out = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(REPO))
        generated = [c for block in GENERATED.findall(text) for c in commands_in(block)]
        out += [(where, line, name, args, True) for line, name, args in generated]
        out += [(where, line, name, args, False) for line, name, args in commands_in(GENERATED.sub("", text))]
    return out


def compose_command(config: str, overrides: list[str]) -> int:
    """Compose ``config`` with ``overrides`` as the script would, every job of a sweep (``-m a=1,2 b=x,y``).

    Returns:
        The number of jobs composed.

    Raises:
        Exception: whatever Hydra raises for an override that does not parse or names no group or key.
    """
    parsed = OverridesParser.create().parse_overrides(overrides)
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, max_batch_size=None) for job in batch]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        for job in jobs:
            compose(config, overrides=list(job), return_hydra_config=True)
    return len(jobs)


COMMANDS = doc_commands()


def test_the_docs_show_commands():
    names = {name for _, _, name, _, _ in COMMANDS}
    assert {"train", "eval", "predict", "export", "cross_corpus"} <= names and len(COMMANDS) >= 50
    readme = [c for c in COMMANDS if c[0] == "README.md"]
    assert {"train", "eval", "predict", "export"} <= {name for _, _, name, _, _ in readme} and len(readme) >= 10


@pytest.mark.parametrize(("where", "line", "config", "overrides", "generated"), COMMANDS,
                         ids=[f"{c[0]}: {c[1][:80]}" for c in COMMANDS])
def test_doc_command_composes(where, line, config, overrides, generated):
    assert compose_command(config, overrides) >= 1, f"{where}: {line}"


@pytest.mark.parametrize("line", [
    ".venv/bin/python train.py model=no_such_model",
    "ser-train model=no_such_model",
    "python -m ser_lightning predict no_such_key=1",
    ".venv/bin/python train.py data.no_such_key=1",
    ".venv/bin/python eval.py ckpt_path=RUN split==test",
    ".venv/bin/python train.py -m 'data.fold=range(0,6)' optim=no_such_schedule",
    ".venv/bin/python train.py -m optim.lr=1e-3,3e-3 model=homebrew_cnn,no_such_model",  # a later job of a sweep
])
def test_a_command_that_no_longer_composes_is_refused(line, tmp_path):
    """The same extraction and composition refuse a command whose group option, key or syntax is wrong, so a
    renamed option or key in ``conf/`` fails the docs' commands."""
    page = tmp_path / "page.md"
    page.write_text(f"Run `{line}` now.\n\n```bash\n{line}   # comment\n```\n")
    found = commands_in(page.read_text())
    assert len(found) == 2 and found[0] == found[1]
    _, config, overrides = found[0]
    with pytest.raises(Exception):  # noqa: B017 - Hydra's errors differ by kind (missing option, key, syntax)
        compose_command(config, overrides)


def test_doc_python_commands_use_the_project_interpreter():
    bare = [f"{where}: {line}" for where, line, _, _, generated in COMMANDS
            if line.startswith("python ") and not generated]
    assert not bare, f"commands calling a bare `python` (use .venv/bin/python): {bare[:5]}"


def test_the_readme_is_a_front_page():
    """The README is what it is, the two commands, the shipped model, what to do next and links; the manual is
    ``docs/``. Its links to pages exist, and ``.ci/run`` still runs the test command it names."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, f"README.md has {len(text.splitlines())} lines"
    assert "make train" in text and "make test" in text
    missing = [link for link in re.findall(r"\]\((docs/[^)#]+)", text) if not (REPO / link).is_file()]
    assert not missing, f"README links to missing pages: {missing}"
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_generated_tables_match_their_results_files():
    """Every results table of ``docs/`` is what ``benchmarks/tables.py`` renders from ``benchmarks/results/``
    now (``make docs`` rewrites them): a results file changed without the docs, or a number edited by hand
    inside a generated block, fails here."""
    from benchmarks import tables

    stale = []
    for page in tables.pages():
        text = page.read_text(encoding="utf-8")
        if tables.rewrite(text, page.name) != text:
            stale.append(page.name)
    assert not stale, f"run `make docs` (or python -m benchmarks.tables): out of date: {stale}"
    assert sum(len(tables.BLOCK.findall(p.read_text(encoding="utf-8"))) for p in tables.pages()) >= 20


def test_a_table_block_follows_its_file(tmp_path):
    """A block is rewritten from the file it names: an edited number inside it is put back, and an unknown
    table is an error naming the page."""
    from benchmarks import tables

    page = "intro\n\n<!-- BEGIN TABLE shipped_folds -->\n| fold | UA |\n| 0 | 99.9 |\n<!-- END TABLE -->\n\nend\n"
    out = tables.rewrite(page, "page.md")
    assert "99.9" not in out and "**mean ± sd**" in out and out.startswith("intro") and out.endswith("end\n")
    assert tables.rewrite(out, "page.md") == out
    with pytest.raises(ValueError, match="page.md: table no_such_table"):
        tables.rewrite("<!-- BEGIN TABLE no_such_table -->\n<!-- END TABLE -->\n", "page.md")


def test_docs_build_strict(tmp_path):
    """``mkdocs build --strict`` (what ``make docs`` runs): every page in the nav, every link and anchor
    resolves, and the API reference's docstrings parse without a warning. About 5 s."""
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e .[docs]")
    pytest.importorskip("mkdocstrings")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "inference" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "inference" / "index.html").read_text(encoding="utf-8")
    assert "EmotionModel" in api and "load_model" in api
