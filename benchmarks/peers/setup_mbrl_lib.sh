#!/usr/bin/env bash
# Create an isolated venv with mbrl-lib 0.2.0 (PyPI `mbrl`) beside gymnasium 1.x / MuJoCo v5,
# for the peer benchmark benchmarks/peers/mbrl_lib.py.
#
#   bash benchmarks/peers/setup_mbrl_lib.sh [VENV_DIR]      # default /work/venv-mbrllib
#
# mbrl-lib is NOT a dependency of mbrl-po: it lives only in this venv (keep it outside the repo).
# mbrl 0.2.0 pins gymnasium==0.26.3, hydra-core==1.0.3 and omegaconf<2.1, none of which install
# beside gymnasium 1.x / Python 3.11 / numpy 2, so it is installed with --no-deps and given
# exactly the modules its imports need (pip prints a "requires omegaconf<2.1" conflict warning:
# expected). The runner works around hydra >= 1.1 with `_recursive_: False` on its configs.
#
# Environment: PYTHON (interpreter that creates the venv, default python3),
#              TORCH_SPEC (default torch==2.13.0: a local CPU wheel on the dev machines;
#              on a GPU machine use the torch already installed there, see README.md).
set -euo pipefail

VENV_DIR="${1:-/work/venv-mbrllib}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

case "$(cd "$(dirname "$0")/../.." && pwd)" in
  "$(cd "$(dirname "$VENV_DIR")" 2>/dev/null && pwd)"*)
    echo "warning: $VENV_DIR looks like it is inside the repository; prefer a path outside it" >&2 ;;
esac

if [ ! -x "$VENV_DIR/bin/python" ]; then
  "$PYTHON" -m venv "$VENV_DIR"
fi
PIP=("$VENV_DIR/bin/python" -m pip install --disable-pip-version-check)

"${PIP[@]}" "$TORCH_SPEC"
"${PIP[@]}" "gymnasium[mujoco]>=1.0,<2"
"${PIP[@]}" --no-deps "mbrl==0.2.0"
# What mbrl's modules import besides torch/numpy/gymnasium:
#   hydra-core (+ omegaconf, antlr4-python3-runtime, PyYAML): hydra.utils.instantiate everywhere
#   termcolor, tqdm: mbrl.util.logger / replay buffer progress
#   imageio: mbrl.third_party.pytorch_sac (needed by mbrl.algorithms.mbpo)
#   matplotlib: mbrl.diagnostics / mbrl.util.* plotting imports
"${PIP[@]}" "hydra-core>=1.3,<1.4" "omegaconf>=2.3,<2.4" termcolor tqdm imageio matplotlib

"$VENV_DIR/bin/python" - <<'PY'
import importlib.metadata as md
import mbrl, mbrl.algorithms.pets, mbrl.algorithms.mbpo, mbrl.planning, mbrl.models  # noqa: F401
import gymnasium, torch
print("ok: mbrl", md.version("mbrl"), "| gymnasium", gymnasium.__version__,
      "| torch", torch.__version__, "| hydra-core", md.version("hydra-core"))
PY
echo "venv ready: $VENV_DIR  (run: $VENV_DIR/bin/python benchmarks/peers/mbrl_lib.py --help)"
