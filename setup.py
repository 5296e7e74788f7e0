"""Build hook (the metadata is in pyproject.toml): ship the top-level ``envs/*.toml`` and ``agents/*.toml``
inside the package as ``mbrl_po/_configs/{envs,agents}`` (read by :mod:`mbrl_po.resources`).

Editable installs skip the copy: they read the checkout's folders directly.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CONFIG_KINDS = ("envs", "agents")  # mbrl_po.resources.CONFIG_KINDS
PACKAGED_DIR = Path("mbrl_po", "_configs")  # mbrl_po.resources.PACKAGED_DIR


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies the shipped TOMLs into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for kind in CONFIG_KINDS:
            dest = Path(self.build_lib) / PACKAGED_DIR / kind
            self.mkpath(str(dest))
            for src in sorted((ROOT / kind).glob("*.toml")):
                self.copy_file(str(src), str(dest / src.name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        if getattr(self, "editable_mode", False):
            return super().get_outputs(include_bytecode)
        extra = [
            str(Path(self.build_lib) / PACKAGED_DIR / kind / src.name)
            for kind in CONFIG_KINDS
            for src in sorted((ROOT / kind).glob("*.toml"))
        ]
        return [*super().get_outputs(include_bytecode), *extra]


setup(cmdclass={"build_py": BuildPyWithConfigs})
