"""The layering holds: the app (pages/, explorer_ui/, app.py) never imports torch nor touches tensors (the
core hands it numpy arrays, records and figures); the core (tavaal_core) never imports streamlit, so the CLI,
the executors and the tests run without it. Read from the source (AST), so a lazy import inside a function
is caught too."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_FILES = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "explorer_ui").glob("*.py")])
CORE_FILES = sorted((ROOT / "tavaal_core").rglob("*.py"))
# Tensor work: the dataset's tensors and moving or converting tensors. The app reads ``Dataset.arrays()``.
TENSOR_ATTRIBUTES = {"x_train", "x_test", "y_train", "y_test", "cpu", "cuda", "detach", "numpy", "to_dense"}


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _tensor_work(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "torch":
            found.append(f"line {node.lineno}: torch")
        elif isinstance(node, ast.Attribute) and node.attr in TENSOR_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_scan_sees_every_layer():
    assert len(APP_FILES) > 20 and len(CORE_FILES) > 40
    assert {"torch"} <= _imports(ast.parse("def f():\n    import torch.nn as nn\n"))
    assert sorted(_tensor_work(ast.parse("y = ds.x_train.cpu()"))) == ["line 1: .cpu", "line 1: .x_train"]


@pytest.mark.parametrize("path", APP_FILES, ids=_rel)
def test_the_app_neither_imports_torch_nor_touches_tensors(path):
    tree = ast.parse(path.read_text())
    assert "torch" not in _imports(tree), f"{_rel(path)} imports torch; ask the core for arrays instead"
    assert not _tensor_work(tree), f"{_rel(path)} does tensor work: {_tensor_work(tree)}"


@pytest.mark.parametrize("path", CORE_FILES, ids=_rel)
def test_the_core_never_imports_streamlit(path):
    assert "streamlit" not in _imports(ast.parse(path.read_text())), f"{_rel(path)} imports streamlit"
