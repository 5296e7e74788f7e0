"""Where the shipped task and agent TOMLs live: ``envs/*.toml`` and ``agents/*.toml``.

The top-level ``envs/`` and ``agents/`` folders of the repository are the source. Building the package
(``pip install .``, ``pip wheel .``; the hook is ``setup.py``) copies them into the package as
``mbrl_po/_configs/envs`` and ``mbrl_po/_configs/agents``, so an installed ``mbrl-po`` finds them from any
folder. A source checkout or an editable install (``pip install -e .``) has no such copy and reads the
checkout's folders directly, so edits there take effect at once.

``$MBRL_PO_ENVS_DIR`` / ``$MBRL_PO_AGENTS_DIR`` and explicit paths to a ``.toml`` override these folders (see
:func:`mbrl_po.envs.load_task` and :func:`mbrl_po.config.agents_dir`).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Literal

ConfigKind = Literal["envs", "agents"]
CONFIG_KINDS: tuple[ConfigKind, ...] = ("envs", "agents")
PACKAGED_DIR = "_configs"
"""Folder inside the installed package that holds the copies (``mbrl_po/_configs/<kind>``)."""


def shipped_config_dir(kind: ConfigKind) -> Path:
    """The folder of the shipped ``<kind>/*.toml`` files.

    Args:
        kind: ``"envs"`` (task files) or ``"agents"`` (agent defaults).

    Returns:
        ``mbrl_po/_configs/<kind>`` of the installed package (read with :mod:`importlib.resources`) when it
        exists, else the ``<kind>/`` folder of the checkout the package was imported from.

    Raises:
        ValueError: on an unknown kind.
    """
    if kind not in CONFIG_KINDS:
        raise ValueError(f"kind: got {kind!r}, allowed {list(CONFIG_KINDS)}")
    packaged = importlib.resources.files("mbrl_po").joinpath(PACKAGED_DIR, kind)
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / kind
