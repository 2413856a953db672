"""The package's layers, checked from the source: who may import whom, and no import circles.

``models/`` and ``features/`` are plain ``nn.Module`` code: they never import Lightning, the
LightningModule (``modules/``), the entry points (``cli/``) or the packages above them
(``inference/``, ``callbacks/``, ``evaluation/``). Any import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ser_lightning"
#: Packages that models/ and features/ must not import.
ABOVE = ("lightning", "pytorch_lightning", "ser_lightning.modules", "ser_lightning.cli", "ser_lightning.inference",
         "ser_lightning.callbacks", "ser_lightning.evaluation", "ser_lightning.data")


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # include imports under `if`/`try` at module level, not inside functions
        nodes = [n for stmt in tree.body if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 for n in ast.walk(stmt)]
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (PKG / pkg).rglob("*.py"))


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{module_name(p)} imports {name}" for p in paths for name in sorted(imports(p))
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_models_and_features_import_no_lightning_modules_or_cli():
    assert sources("models") and sources("features")
    assert violations(sources("models", "features"), ABOVE) == []


def test_the_layer_check_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ser_lightning.modules.classifier import SERClassifier\nimport lightning.pytorch as pl\n")
    assert imports(bad) >= {"ser_lightning.modules.classifier", "lightning.pytorch"}
    assert len([v for v in [n for n in imports(bad)] if any(v == f or v.startswith(f + ".") for f in ABOVE)]) >= 2


def test_predict_does_not_import_export():
    forbidden = ("ser_lightning.inference.export", "ser_lightning.cli.export")
    assert violations([PKG / "inference" / "predictor.py", PKG / "cli" / "predict.py"], forbidden) == []


def test_nothing_imports_a_private_registry():
    for path in sorted(PKG.rglob("*.py")) + sorted((PKG.parent / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        private = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
                   if a.name in ("_MODELS", "_REGISTRY", "_DEPRECATED")]
        assert not private, f"{path} imports {private}"


def test_cli_holds_no_callbacks():
    for path in sources("cli"):
        tree = ast.parse(path.read_text())
        bases = [ast.unparse(b) for n in ast.walk(tree) if isinstance(n, ast.ClassDef) for b in n.bases]
        assert not [b for b in bases if "Callback" in b], f"{path} defines a callback"


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        graph[name] = {m for m in imports(path, top_level_only) if m in mods and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "all imports"])
def test_no_import_circles(top_level_only):
    # A package's __init__ importing its own submodules is not a circle between layers.
    graph = {n: {m for m in deps if not (n == m.rsplit(".", 1)[0] or m.startswith(n + "."))}
             for n, deps in _graph(top_level_only).items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_circle_check_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
