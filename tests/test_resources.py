"""The shipped task and agent TOMLs: found in a checkout, copied into the built package by setup.py, and found
there by an installed package run from any folder (checked on a real ``build_py`` output, no wheel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mbrl_po.config import agents_dir
from mbrl_po.envs.task import list_tasks
from mbrl_po.resources import shipped_config_dir

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted(p.stem for p in (ROOT / "envs").glob("*.toml"))
AGENTS = sorted(p.stem for p in (ROOT / "agents").glob("*.toml"))

PROBE = """
import json, sys
from mbrl_po.config import agents_dir, load_agent_config
from mbrl_po.envs.task import list_tasks
from mbrl_po.resources import shipped_config_dir
envs, agents = sys.argv[1].split(","), sys.argv[2].split(",")
print(json.dumps({
    "envs_dir": str(shipped_config_dir("envs")), "agents_dir": str(agents_dir()),
    "tasks": list_tasks(), "agents": sorted(p.stem for p in agents_dir().glob("*.toml")),
    "configs": {f"{a}/{e}": load_agent_config(a, e).to_toml() for a in agents for e in envs},
}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MBRL_PO_ENVS_DIR", "MBRL_PO_AGENTS_DIR", "PYTHONPATH")}
    return {**env, **extra}


def test_a_checkout_reads_its_top_level_folders(monkeypatch) -> None:
    monkeypatch.delenv("MBRL_PO_ENVS_DIR", raising=False)
    monkeypatch.delenv("MBRL_PO_AGENTS_DIR", raising=False)
    assert shipped_config_dir("envs") == ROOT / "envs" and shipped_config_dir("agents") == ROOT / "agents"
    assert agents_dir() == ROOT / "agents"
    assert list_tasks() == ENVS
    with pytest.raises(ValueError, match=r"kind: got 'policies', allowed \['envs', 'agents'\]"):
        shipped_config_dir("policies")  # type: ignore[arg-type]


def test_agents_dir_variable_overrides_the_shipped_folder(tmp_path, monkeypatch) -> None:
    (tmp_path / "mine.toml").write_text('kind = "pets"\n')
    monkeypatch.setenv("MBRL_PO_AGENTS_DIR", str(tmp_path))
    assert agents_dir() == tmp_path


@pytest.mark.slow
def test_the_built_package_ships_every_toml_and_finds_it_from_any_folder(tmp_path) -> None:
    lib, egg, elsewhere = tmp_path / "lib", tmp_path / "egg", tmp_path / "empty"
    egg.mkdir()
    elsewhere.mkdir()
    build = [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(egg), "build_py", "--build-lib", str(lib)]
    subprocess.run(build, cwd=ROOT, env=_clean_env(), check=True, capture_output=True, text=True)
    for kind, names in (("envs", ENVS), ("agents", AGENTS)):
        shipped = lib / "mbrl_po" / "_configs" / kind
        assert sorted(p.stem for p in shipped.glob("*.toml")) == names
        for name in names:
            assert (shipped / f"{name}.toml").read_bytes() == (ROOT / kind / f"{name}.toml").read_bytes()

    out = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(ENVS), ",".join(AGENTS)],
        cwd=elsewhere, env=_clean_env(PYTHONPATH=str(lib)), check=True, capture_output=True, text=True,
    )
    got = json.loads(out.stdout)
    assert got["envs_dir"] == str(lib / "mbrl_po" / "_configs" / "envs")
    assert got["agents_dir"] == str(lib / "mbrl_po" / "_configs" / "agents")
    assert got["tasks"] == ENVS and got["agents"] == AGENTS
    from mbrl_po.config import load_agent_config

    for key, text in got["configs"].items():  # the same resolved configs (so the same trial ids) as the checkout
        agent, env = key.split("/")
        assert text == load_agent_config(agent, env).to_toml(), key
