"""The benchmark harness (``python -m mbrl_po.benchmark.<script>`` or ``mbrl-po bench``)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported, as in mbrl_po/cli.py
