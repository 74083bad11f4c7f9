"""The package's layers, enforced: what each part may import, and how big a module may grow.

- the core (every module directly in ``ser_lib/``) and ``ser_lib.calls`` import neither
  Streamlit nor plotly;
- ``ser_lib.calls`` never imports the training code (training, models, export, featurize);
- ``ser_lib.service`` (the live call service) imports neither Streamlit, plotly, the dashboard nor
  the training code;
- ``ser_lib.store`` (the call store) imports neither Streamlit, plotly, the dashboard nor the training
  code, and nothing outside it imports DuckDB;
- nothing but ``ser_lib.app`` imports ``ser_lib.app``; only ``ser_lib.app.ui`` imports Streamlit;
- importing ``ser_lib`` imports no TensorFlow, and TensorFlow is imported only by the training side
  (``training``, ``models``, ``export``), never at a module's top level elsewhere;
- only ``ser_lib.calls.ray_engine`` imports Ray (an optional install), and only inside functions;
- no module is longer than :data:`MAX_LINES`.

Imports are read from the source (every ``import`` statement, including those inside functions),
so a deferred import cannot slip past.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ser_lib

PACKAGE = Path(ser_lib.__file__).parent
MAX_LINES = 600
TRAINING_SIDE = {"ser_lib.training", "ser_lib.models", "ser_lib.export", "ser_lib.featurize"}
RAY_ENGINE = "ser_lib.calls.ray_engine"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as absolute dotted names (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}  # `from . import models`
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else "core"


def _uses(imports: set[str], top: str) -> list[str]:
    return sorted(m for m in imports if m == top or m.startswith(top + "."))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_each_module_keeps_to_its_layer(path):
    imports = _imports(path)
    layer = _layer(path)
    name = _module_name(path)
    if layer in ("core", "calls", "cli"):
        ui = _uses(imports, "streamlit") + _uses(imports, "plotly")
        assert not ui, f"{name} imports {ui}"
        assert not _uses(imports, "ser_lib.app"), f"{name} imports the dashboard's package: {_uses(imports, 'ser_lib.app')}"
    if layer == "calls":
        bad = sorted(m for m in imports if any(m == t or m.startswith(t + ".") for t in TRAINING_SIDE))
        assert not bad, f"{name} (calls) imports training code: {bad}"
    if layer == "service":  # the live service: no dashboard, no plots, no training code (it serves a bundle)
        bad = _uses(imports, "streamlit") + _uses(imports, "plotly") + _uses(imports, "ser_lib.app")
        bad += sorted(m for m in imports if any(m == t or m.startswith(t + ".") for t in TRAINING_SIDE))
        assert not bad, f"{name} (service) imports {bad}"
    if layer == "store":  # the call store: data only; the analytics page draws what it returns
        bad = _uses(imports, "streamlit") + _uses(imports, "plotly") + _uses(imports, "ser_lib.app")
        bad += sorted(m for m in imports if any(m == t or m.startswith(t + ".") for t in TRAINING_SIDE))
        assert not bad, f"{name} (store) imports {bad}"
    if layer != "store":
        assert not _uses(imports, "duckdb"), f"{name} imports DuckDB: only ser_lib.store may (go through its API)"
    if layer == "app" and name != "ser_lib.app.ui":
        assert not _uses(imports, "streamlit"), f"{name} imports Streamlit; only ser_lib.app.ui may"
    if name != RAY_ENGINE:
        assert not _uses(imports, "ray"), f"{name} imports Ray: only {RAY_ENGINE} may (Ray is an optional install)"
    if name not in TRAINING_SIDE:
        tf = _uses(imports, "tensorflow") + _uses(imports, "keras") + _uses(imports, "tf2onnx")
        assert not tf, f"{name} imports {tf}: only {sorted(TRAINING_SIDE)} may (inference runs ONNX Runtime)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_is_over_the_size_limit(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{_module_name(path)} has {n} lines (limit {MAX_LINES}): split it by concern"


def test_the_layering_check_sees_deferred_and_relative_imports(tmp_path):
    """The checker itself: an import inside a function, and a relative one, are both found."""
    probe = PACKAGE / "calls" / "_probe_for_test.py"
    probe.write_text("def f():\n    from ..training import train\n    import plotly.express\n")
    try:
        found = _imports(probe)
    finally:
        probe.unlink()
    assert "ser_lib.training" in found and "plotly.express" in found


def test_ray_is_imported_only_inside_the_ray_engines_functions():
    """Ray is optional: ``ser_lib.calls.ray_engine`` imports it on use, never at its top level."""
    tree = ast.parse((PACKAGE / "calls" / "ray_engine.py").read_text())
    top = {a.name for node in tree.body if isinstance(node, ast.Import) for a in node.names}
    top |= {node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert not _uses(top, "ray"), f"{RAY_ENGINE} imports Ray at its top level: {_uses(top, 'ray')}"
    assert "ray" in _imports(PACKAGE / "calls" / "ray_engine.py")  # the check above looks at the right file


def test_importing_the_package_imports_no_tensorflow_streamlit_or_plotly():
    code = (
        "import sys, ser_lib, ser_lib.calls, ser_lib.bundle, ser_lib.cli, ser_lib.evaluation, ser_lib.frontends\n"
        "bad = sorted(m for m in ('tensorflow', 'keras', 'streamlit', 'plotly') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
