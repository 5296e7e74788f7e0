"""Small statistics and reporting helpers for benchmarks: mean and Student-t confidence intervals over seeds,
and markdown tables.

No scipy: the t quantile is found by bisection on the CDF, which is computed from the regularised incomplete
beta function (continued fraction, Numerical Recipes ``betacf``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def _betacf(a: float, b: float, x: float, max_iter: int = 300, eps: float = 1e-15) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1]."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc: a and b must be > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with ``df`` > 0 degrees of freedom."""
    if not df > 0:
        raise ValueError(f"df: must be > 0, got {df}")
    x = df / (df + t * t)
    tail = 0.5 * betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t distribution (e.g. ``t_ppf(0.975, 4) = 2.776``)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q: must lie in (0, 1), got {q}")
    if not df > 0:
        raise ValueError(f"df: must be > 0, got {df}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """Mean and half-width of the Student-t confidence interval of the mean.

    Args:
        values: one number per seed; NaNs are NOT dropped (a NaN makes the result NaN).
        confidence: in (0, 1).

    Returns:
        (mean, half_width, n). ``half_width`` is NaN when n < 2; mean is NaN when n == 0.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must lie in (0, 1), got {confidence}")
    x = np.asarray(list(values), dtype=float)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    return mean, t_ppf(0.5 + confidence / 2.0, n - 1) * sem, n


def format_number(x: float, digits: int = 3) -> str:
    """Fixed-point with ``digits`` decimals, switching to scientific notation for very large/small values."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 10 ** (-digits)):
        return f"{x:.{max(digits - 1, 1)}e}"
    return f"{x:.{digits}f}"


def format_mean_ci(mean: float, half_width: float, digits: int = 3) -> str:
    """``"1.234 ± 0.056"`` (or just the mean when the half-width is NaN)."""
    if half_width is None or math.isnan(half_width):
        return format_number(mean, digits)
    return f"{format_number(mean, digits)} ± {format_number(half_width, digits)}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A GitHub markdown table.

    Args:
        headers: column titles.
        rows: one sequence of cells per row (converted with ``str``).
        align: one letter per column, ``l``/``r``/``c`` (default: first column left, the rest right).

    Returns:
        The table as a string ending with a newline.
    """
    ncol = len(headers)
    if ncol == 0:
        raise ValueError("headers: need at least one column")
    align = align or ("l" + "r" * (ncol - 1))
    if len(align) != ncol or set(align) - set("lrc"):
        raise ValueError(f"align: need {ncol} letters from 'lrc', got {align!r}")
    for i, r in enumerate(rows):
        if len(r) != ncol:
            raise ValueError(f"rows[{i}]: has {len(r)} cells, expected {ncol}")
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
