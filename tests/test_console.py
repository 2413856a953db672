"""A quiet, honest console (issue 24 item 2): the lines of a ``fast_dev_run`` of the default model and of a
one-file prediction, counted in fresh processes (warnings as a user sees them: no ``PYTHONWARNINGS``).

Measured with these commands (COLUMNS=80, non-empty lines), main at 4a57cfd → this branch: the fast_dev_run 61
(49 stdout + 12 stderr: every Lightning INFO line twice, two adverts, three harmless warnings, log lines on
stdout) → 35 (21 + 14); the one-file prediction 7 stdout lines + a blank stderr line → 7 + 0, and no
``outputs/predict/<timestamp>/`` left behind with ``output=DIR``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import REPO, TINY_DATA
from tests.speech_like import speech_like

#: What a quiet console never shows (without hydra.verbose=true).
NOISE = [r"💡 Tip", r"^INFO: ", r"_pytree\.py", r"Found \d+ module\(s\) in eval mode", r"Total FLOPs",
         r"no CSV training log", r"GPU available:", r"TPU available:"]
LOG_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\]\[(INFO|WARNING|ERROR|DEBUG)\] ")


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(PYTHONPATH=str(REPO), COLUMNS="80")
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def fast_dev_run(tiny_ravdess, tmp_path_factory):
    def run(*extra: str) -> subprocess.CompletedProcess:
        d = tmp_path_factory.mktemp("fast")
        r = _run("train.py", "debug=fast", f"data.root={tiny_ravdess}", f"data.cache_dir={d / 'cache'}", *TINY_DATA,
                 f"hydra.run.dir={d / 'run'}", *extra, cwd=d)
        assert r.returncode == 0, r.stderr[-3000:]
        return r
    return run


def test_fast_dev_run_console_is_quiet_and_says_each_thing_once(fast_dev_run):
    r = fast_dev_run()
    out, err = _lines(r.stdout), _lines(r.stderr)
    for pattern in NOISE:
        assert not any(re.search(pattern, ln) for ln in out + err), pattern
    assert all(LOG_LINE.match(ln) for ln in err), err  # stderr: log lines only (no bare warnings)
    messages = [LOG_LINE.sub("", ln) for ln in err]
    assert len(messages) == len(set(messages)), messages  # each message once
    assert not any(LOG_LINE.match(ln) for ln in out)  # stdout: the model summary and progress only
    assert any("test UA" in m for m in messages)
    print(f"fast_dev_run: {len(out)} stdout + {len(err)} stderr = {len(out) + len(err)} lines")
    assert len(out) + len(err) <= 40, r.stdout + r.stderr  # measured: 35 (61 before)


def test_verbose_brings_the_detail_back(fast_dev_run):
    r = fast_dev_run("hydra.verbose=true")
    text = r.stdout + r.stderr
    assert "💡 Tip" in text and re.search(r"Found \d+ module\(s\) in eval mode", text)
    assert "[DEBUG]" in text


def test_one_file_prediction_prints_its_table_and_nothing_else(tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, speech_like(2.0), 16000)
    (tmp_path / "bad.wav").write_text("not audio")
    r = _run("predict.py", f"input={clip}", f"output={tmp_path / 'out'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out, err = _lines(r.stdout), _lines(r.stderr)
    print(f"one-file prediction: {len(out)} stdout + {len(err)} stderr lines")
    assert err == []  # no warning, no log line, no progress bar for one file
    assert len(out) == 7 and "clip.wav" in out[4] and out[-1].startswith("1 of 1 files")  # title, 4 table lines, summary
    # a failed file: its one line below the table (stdout), the count warning on stderr, not in the table's stream
    r = _run("predict.py", f"input=[{clip},{tmp_path / 'bad.wav'}]", f"output={tmp_path / 'out2'}", "progress=false",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out, err = _lines(r.stdout), _lines(r.stderr)
    assert [ln for ln in out if "bad.wav: cannot decode audio" in ln] == \
        [f"error: {tmp_path / 'bad.wav'}: cannot decode audio (a text file, not audio)"]
    assert len(err) == 1 and "1 of 2 files could not be classified" in err[0] and "[WARNING]" in err[0]
    assert not any("WARNING" in ln for ln in out)
