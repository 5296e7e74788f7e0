"""The benchmark harness: ``python -m benchmarks.harness.<script>`` from a checkout, or ``mbrl-po bench`` /
``mbrl-po report`` run from one. It uses the library (:mod:`mbrl_po`) and is not installed with it."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported, as in mbrl_po/cli.py
