"""The package's structure: every module in one layer of `birdseg.LAYERS`, imports only downwards (inside functions
too), no cycle, and the modules that score and draw import no TensorFlow."""
import ast
import json
import subprocess
import sys

import pytest
from conftest import ROOT

import birdseg

PACKAGE = ROOT / "birdseg"


def birdseg_imports(path):
    """The birdseg modules `path` imports anywhere in it (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "birdseg":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("birdseg."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("birdseg.")}
    return found - {path.stem}


def import_graph():
    return {path.stem: birdseg_imports(path) for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state and (cycle := visit(target, trail + [target])):
                return cycle
        state[module] = "done"
        return None

    return next((cycle for module in sorted(graph) if module not in state and (cycle := visit(module, [module]))),
                None)


def test_every_module_is_in_exactly_one_layer():
    listed = [module for layer in birdseg.LAYERS for module in layer]
    assert sorted(listed) == sorted(import_graph()), "birdseg.LAYERS and the modules in birdseg/ differ"
    assert len(listed) == len(set(listed))


def test_modules_import_only_from_earlier_layers():
    layer_of = {module: index for index, layer in enumerate(birdseg.LAYERS) for module in layer}
    upward = [f"{module} (layer {layer_of[module]}) imports {target} (layer {layer_of[target]})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer_of[target] >= layer_of[module]]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_cycles_hidden_in_functions(tmp_path):
    (tmp_path / "a.py").write_text("from birdseg.b import f\n")
    (tmp_path / "b.py").write_text("def f():\n    from birdseg import a\n")
    graph = {path.stem: birdseg_imports(path) for path in tmp_path.glob("*.py")}
    assert find_cycle(graph) in (["a", "b", "a"], ["b", "a", "b"])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("module", ["metrics", "figures", "evaluate", "breakdown", "layout", "pairs", "images"])
def test_scoring_and_drawing_modules_import_no_tensorflow(module):
    heavy = ("tensorflow", "keras", "segmentation_models")
    code = f"import sys, json, birdseg.{module}; print(json.dumps([n for n in {heavy!r} if n in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_run_folders_names_are_spelled_in_layout_only():
    """Every other module, the notebook, the facade and the benchmarks read them from birdseg.layout."""
    from birdseg import layout

    names = [value for key, value in vars(layout).items() if key.isupper() and isinstance(value, str)]
    sources = [*PACKAGE.glob("*.py"), ROOT / "birdseg_utils.py", ROOT / "Bird_Segmentation_Model.ipynb",
               *(ROOT / "benchmarks").glob("*.py")]
    sources = [path for path in sources if path.name not in ("layout.py", "__init__.py")]  # LAYERS names modules
    spelled = [f"{path.name}: {name}" for path in sources for name in names
               if f'"{name}"' in path.read_text() or f'\\"{name}\\"' in path.read_text()]
    assert not spelled, "spelled outside birdseg/layout.py:\n" + "\n".join(spelled)
