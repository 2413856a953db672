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


def package_of(path: Path) -> str:
    """The package a module of ``ser_lightning`` belongs to (a package's ``__init__`` belongs to itself)."""
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports(path: Path, top_level_only: bool = False, package: str | None = None) -> set[str]:
    """Modules ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``); relative imports are resolved
    against the module's package (``from ..modules import classifier`` in ``models/registry.py`` gives
    ``ser_lightning.modules`` and ``ser_lightning.modules.classifier``).

    Args:
        path: A Python file.
        top_level_only: Only imports that run when the module is imported (not inside functions or classes).
        package: The package relative imports start from; default: ``path``'s package inside ``ser_lightning``.

    Raises:
        ValueError: a relative import in a file outside ``ser_lightning`` with no ``package`` given, or one that
            climbs above the top-level package.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # include imports under `if`/`try` at module level, not inside functions
        nodes = [n for stmt in tree.body if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 for n in ast.walk(stmt)]
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = (package if package is not None else package_of(path)).split(".")
                if node.level > len(parts):
                    raise ValueError(f"{path}:{node.lineno}: relative import beyond the top-level package")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            if base:
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
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


def test_relative_imports_are_resolved(tmp_path):
    """A relative import is checked like the absolute one it stands for (``level`` 1 = this package, 2 = its
    parent, ...), inside a function too."""
    bad = tmp_path / "registry.py"
    bad.write_text("from . import builder\nfrom .cnn_blocks import ConvBlock\n"
                   "def f():\n    from ..modules import classifier\n    from ..cli.train import train\n")
    got = imports(bad, package="ser_lightning.models")
    assert got >= {"ser_lightning.models", "ser_lightning.models.builder", "ser_lightning.models.cnn_blocks.ConvBlock",
                   "ser_lightning.modules", "ser_lightning.modules.classifier", "ser_lightning.cli.train"}
    assert imports(bad, top_level_only=True, package="ser_lightning.models").isdisjoint({"ser_lightning.modules"})
    assert package_of(PKG / "models" / "__init__.py") == "ser_lightning.models" == package_of(PKG / "models" / "registry.py")
    with pytest.raises(ValueError, match="beyond the top-level package"):
        imports(bad, package="ser_lightning")


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


#: The prediction path (``ser_lightning.inference`` as the API and ``predict.py`` use it): plain PyTorch, no training
#: stack (tests/test_predict_imports.py checks the same at run time).
PREDICTION_PATH = ("api", "predictor", "loading", "checkpoint", "windows", "scheduling", "labels", "outputs",
                   "set_prediction", "speaker_reference", "adaptation", "vad", "runners", "card", "default_model",
                   "__init__", "ensemble")
TRAINING_STACK = ("lightning", "pytorch_lightning", "timm", "transformers", "wandb", "matplotlib", "torchmetrics",
                  "ser_lightning.data.datamodule", "ser_lightning.modules.classifier", "ser_lightning.cli")


def test_the_prediction_path_imports_no_training_stack():
    """Module-level imports of the prediction path name no training package; the data module is not imported at all
    (the audio settings a checkpoint needs live in :mod:`ser_lightning.data.audio`)."""
    paths = [PKG / "inference" / f"{name}.py" for name in PREDICTION_PATH]
    top = [f"{module_name(p)} imports {n}" for p in paths for n in sorted(imports(p, top_level_only=True))
           if any(n == f or n.startswith(f + ".") for f in TRAINING_STACK)]
    assert top == []
    assert violations(paths, ("ser_lightning.data.datamodule",)) == []


def test_the_registry_imports_network_families_on_demand():
    """``ser_lightning.models`` and its registry import no network family at module level (timm, transformers come
    with the family that needs them); the facts record imports nothing of the package."""
    families = ("ser_lightning.models.cnn", "ser_lightning.models.sequence", "ser_lightning.models.ensembles",
                "ser_lightning.models.timm_backbones", "ser_lightning.models.wav2vec2", "ser_lightning.models.attention_fcn",
                "ser_lightning.models.encoders", "timm", "transformers")
    for path in (PKG / "models" / "__init__.py", PKG / "models" / "registry.py", PKG / "models" / "builder.py"):
        top = imports(path, top_level_only=True)
        assert not [n for n in top if any(n == f or n.startswith(f + ".") for f in families)], path
    assert not [n for n in imports(PKG / "models" / "facts.py") if n.startswith("ser_lightning")]


def test_batches_and_datasets_are_plain_torch():
    """The batch types and datasets split out of the data module import no Lightning and not the data module."""
    paths = [PKG / "data" / "batches.py", PKG / "data" / "datasets.py"]
    assert violations(paths, ("lightning", "pytorch_lightning", "ser_lightning.data.datamodule")) == []
