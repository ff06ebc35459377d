"""Small statistics shared by the benchmarks."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of samples, nearest-rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary_us(seconds: list[float]) -> dict[str, float]:
    """p50/p99/mean in microseconds and the rate per second of a list of durations."""
    return {
        "p50_us": round(percentile(seconds, 0.50) * 1e6, 1),
        "p99_us": round(percentile(seconds, 0.99) * 1e6, 1),
        "mean_us": round(statistics.fmean(seconds) * 1e6, 1),
        "per_s": round(len(seconds) / sum(seconds), 1),
    }
