"""Summarise a mutmut run (``make mutants``): counts per module, the surviving mutants and why each may survive.

Usage (from the repository root, after ``mutmut run``)::

    python .ci/mutants.py                  # write benchmarks/results/mutants.{json,md}; exit 1 on unexplained survivors
    python .ci/mutants.py --no-write       # only print

mutmut keeps one ``<module>.py.meta`` file (JSON, the exit code of every mutant's test run) per mutated module
under ``mutants/``; this reads them, asks ``mutmut show`` for each survivor's diff, and matches the survivors
against ``.ci/mutants_survivors.txt`` (``<mutant name or fnmatch pattern>: <why no test should kill it>``, one
a line, ``#`` comments). A survivor without a reason is a gap: kill it with a test, or give the reason. Reasons whose mutant
no longer survives are reported so that the list stays honest.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import platform
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REASONS = ROOT / ".ci" / "mutants_survivors.txt"
OUT = ROOT / "benchmarks" / "results"


def status_of(code: int | None) -> str:
    """mutmut's name for a test run's exit code (its own table, so the two never disagree)."""
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


def read_results(root: Path = ROOT) -> dict[str, dict[str, str]]:
    """Module path → {mutant name → status} from mutmut's ``.meta`` files under ``root/mutants``.

    Raises:
        FileNotFoundError: no mutmut results (run ``make mutants`` first).
    """
    metas = sorted((root / "mutants").rglob("*.py.meta"))
    if not metas:
        raise FileNotFoundError(f"{root / 'mutants'}: no mutmut results; run `make mutants` first")
    out = {}
    for meta in metas:
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        if codes:
            out[str(meta.relative_to(root / "mutants")).removesuffix(".meta")] = {k: status_of(v) for k, v in codes.items()}
    return out


def read_reasons(path: Path = REASONS) -> dict[str, str]:
    """``mutant name → reason`` from the survivors file (blank lines and ``#`` comments skipped).

    Raises:
        ValueError: a line that is not ``<name>: <reason>``.
    """
    reasons = {}
    if not path.is_file():
        return reasons
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^\s*(\S+):\s+(\S.*)$", line)
        if not m:
            raise ValueError(f"{path}:{n}: expected '<mutant name>: <reason>', got {line!r}")
        reasons[m.group(1)] = m.group(2).strip()
    return reasons


def diff_of(name: str) -> str:
    """The mutant's diff as ``mutmut show`` prints it (without its header line)."""
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in shown.stdout.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    return "\n".join(lines)


def reason_for(name: str, reasons: dict[str, str]) -> str | None:
    """The reason given for a mutant: by its exact name, else by the first matching name pattern
    (``fnmatch``, e.g. ``ser_lightning.inference.outputs.x_write_outputs__mutmut_*``)."""
    if name in reasons:
        return reasons[name]
    return next((why for pattern, why in reasons.items() if fnmatch.fnmatchcase(name, pattern)), None)


def summarise(results: dict[str, dict[str, str]], reasons: dict[str, str]) -> dict:
    """Counts per module and overall, the survivors (with reason or ``None``) and stale reasons."""
    modules = {path: dict(Counter(statuses.values())) for path, statuses in results.items()}
    total = Counter()
    for counts in modules.values():
        total.update(counts)
    survivors = sorted(name for statuses in results.values() for name, s in statuses.items() if s == "survived")
    sampled = sum(v for k, v in total.items() if k != "not checked")  # outside a MUTANTS= sample: not run
    untested = Counter(name.split("__mutmut_")[0] for statuses in results.values() for name, s in statuses.items()
                       if s == "no tests")
    return {"modules": modules, "total": dict(total), "sampled": sampled, "no_tests_by_function": dict(untested),
            "score": round(100 * total["killed"] / sampled, 1) if sampled else None,
            "survivors": [{"name": n, "reason": reason_for(n, reasons)} for n in survivors],
            "stale_reasons": sorted(p for p in reasons if not any(fnmatch.fnmatchcase(n, p) for n in survivors))}


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--command", default="make mutants", help="the command that ran mutmut (recorded)")
    args = ap.parse_args(argv)
    summary = summarise(read_results(), read_reasons())
    for s in summary["survivors"]:
        s["diff"] = diff_of(s["name"])
    t = summary["total"]
    print(f"mutants run: {summary['sampled']} (of {sum(t.values())}): killed {t.get('killed', 0)}, survived "
          f"{t.get('survived', 0)}, no test runs their line {t.get('no tests', 0)}; {dict(t)}; "
          f"score (killed / run) {summary['score']} %")
    unexplained = [s for s in summary["survivors"] if not s["reason"]]
    for s in unexplained:
        print(f"\nsurvivor without a reason in {REASONS.relative_to(ROOT)}: {s['name']}\n{s['diff']}")
    for name in summary["stale_reasons"]:
        print(f"no longer surviving (drop its reason): {name}")
    if not args.no_write:
        summary.update(date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       machine={"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                "python": platform.python_version()},
                       command=args.command)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "mutants.json").write_text(json.dumps(summary, indent=2) + "\n")
        lines = [f"# Mutation testing ({summary['date']})", "", f"`{summary['command']}`: {summary['sampled']} mutants "
                 f"run (of {sum(t.values())}): {t.get('killed', 0)} killed, {t.get('survived', 0)} survived, "
                 f"{t.get('no tests', 0)} on lines no selected test runs; score {summary['score']} %.", "",
                 "| module | killed | survived | no tests | other run | not run (outside the sample) |",
                 "|---|---:|---:|---:|---:|---:|"]
        for path, c in summary["modules"].items():
            other = sum(v for k, v in c.items() if k not in ("killed", "survived", "no tests", "not checked"))
            lines.append(f"| `{path}` | {c.get('killed', 0)} | {c.get('survived', 0)} | {c.get('no tests', 0)} | "
                         f"{other} | {c.get('not checked', 0)} |")
        lines += ["", "## Mutants on lines no selected test runs (by function)", "",
                  "Not run: the fast tests of `[tool.mutmut]` never call these lines (figures, files written, command-line "
                  "glue, paths the end-to-end tests cover).", ""]
        lines += [f"- `{f}`: {n}" for f, n in sorted(summary["no_tests_by_function"].items())]
        lines += ["", "## Survivors", ""]
        for s in summary["survivors"]:
            lines += [f"### `{s['name']}`", "", f"Reason: {s['reason'] or '**none given**'}", "", "```diff", s["diff"],
                      "```", ""]
        (OUT / "mutants.md").write_text("\n".join(lines) + "\n")
        print(f"wrote {OUT / 'mutants.json'} and mutants.md")
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main())
