"""Benchmarks of mbrl-po, run from a checkout of the repository (not part of the installed package).

``harness/`` holds the scripts (``python -m benchmarks.harness.<script>`` or ``mbrl-po bench``/``mbrl-po report``
from a checkout); ``suites/``, ``anchors/``, ``peers/`` and ``policies/`` hold their data.
"""
