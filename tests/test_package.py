"""Importing mbrl_po changes nothing global; the ``mbrl-po`` entry point sets OMP_WAIT_POLICY before torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mbrl_po

ROOT = Path(__file__).resolve().parents[1]

IMPORT_ONLY = """
import json, os, sys
before = dict(os.environ)
import mbrl_po
state = {"env_same": dict(os.environ) == before, "torch_loaded": "torch" in sys.modules}
from mbrl_po import GaussianEnsemble, DynamicsTrainer
import torch
state.update(env_after_use_same=dict(os.environ) == before, threads=torch.get_num_threads(),
             dtype=str(torch.get_default_dtype()), grad=torch.is_grad_enabled(), name=GaussianEnsemble.__name__)
print(json.dumps(state))
"""

# records OMP_WAIT_POLICY at the moment torch is first imported, then imports the console script's target
AT_TORCH_IMPORT = """
import json, os, sys
seen = {}
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "torch" not in seen:
            seen["torch"] = os.environ.get("OMP_WAIT_POLICY")
        return None
sys.meta_path.insert(0, Spy())
from mbrl_po.cli import main
import mbrl_po.agents.pets  # what `mbrl-po train` imports
print(json.dumps(seen))
"""


def _run(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "PYTHONPATH")}
    clean["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_mbrl_po_changes_nothing_global() -> None:
    got = _run(IMPORT_ONLY, OMP_NUM_THREADS="1")
    assert got["env_same"] and got["env_after_use_same"]
    assert not got["torch_loaded"]  # the exports load on first use, so the CLI can set OMP before torch
    assert got["name"] == "GaussianEnsemble"
    assert got["threads"] == 1 and got["dtype"] == "torch.float32" and got["grad"]


@pytest.mark.slow
def test_the_cli_sets_omp_wait_policy_before_torch_is_imported() -> None:
    assert _run(AT_TORCH_IMPORT) == {"torch": "PASSIVE"}
    assert _run(AT_TORCH_IMPORT, OMP_WAIT_POLICY="ACTIVE") == {"torch": "ACTIVE"}  # an explicit setting wins


def test_exports_load_lazily_and_unknown_names_fail() -> None:
    assert set(mbrl_po.__all__) <= set(dir(mbrl_po))
    for name in mbrl_po.__all__:
        assert getattr(mbrl_po, name).__name__ == name
    with pytest.raises(AttributeError, match="module 'mbrl_po' has no attribute 'Nope'"):
        mbrl_po.Nope  # noqa: B018


def _import_graph() -> dict[str, set[str]]:
    """mbrl_po module -> the mbrl_po modules it imports (at any level of the file), packages' __init__ left out
    (they only re-export)."""
    import ast

    graph: dict[str, set[str]] = {}
    for f in (ROOT / "mbrl_po").rglob("*.py"):
        rel = f.relative_to(ROOT).with_suffix("")
        if rel.name == "__init__":
            continue
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mbrl_po"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("mbrl_po"))
        graph[".".join(rel.parts)] = deps
    return graph


def test_the_package_holds_no_benchmark_harness() -> None:
    """The harness is benchmarks/harness/ of a checkout; the library never imports it (the CLI's bench and report
    load it from the checkout at run time, by name)."""
    assert not (ROOT / "mbrl_po" / "benchmark").exists()
    for f in (ROOT / "mbrl_po").rglob("*.py"):
        text = f.read_text()
        assert "import benchmarks" not in text and "from benchmarks" not in text, f
        assert "mbrl_po.benchmark." not in text, f


def test_no_module_imports_itself_through_others() -> None:
    graph = _import_graph()
    assert graph["mbrl_po.envs.rewards"] and "mbrl_po.envs.toy" not in graph["mbrl_po.envs.rewards"]

    def reaches(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m in graph and m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return seen

    assert [m for m in graph if m in reaches(m)] == []


#: the library's layers, bottom up: a module imports only from its own layer and the ones below it
LAYERS = (
    ("mbrl_po.types", "mbrl_po.errors", "mbrl_po.resources"),
    ("mbrl_po.models", "mbrl_po.objectives", "mbrl_po.planning", "mbrl_po.training", "mbrl_po.data",
     "mbrl_po.envs"),
    ("mbrl_po.config",),
    ("mbrl_po.agents", "mbrl_po.demo"),
    ("mbrl_po.cli",),
)


def test_no_layer_imports_one_above_it() -> None:
    """E.g. the data layer trains no agent (training behaviour policies is mbrl_po.agents.policies), and the
    models, objectives and planners know nothing of the config that names them."""
    import ast

    def layer(module: str) -> int:
        for i, names in enumerate(LAYERS):
            if any(module == n or module.startswith(n + ".") for n in names):
                return i
        raise AssertionError(f"{module} is in no layer")

    bad = []
    for f in (ROOT / "mbrl_po").rglob("*.py"):
        rel = f.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if module == "mbrl_po":
            continue  # the package's lazy exports
        for node in ast.walk(ast.parse(f.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            bad += [f"{module} imports {n}" for n in names
                    if n.startswith("mbrl_po.") and layer(n) > layer(module)]
    assert bad == []
