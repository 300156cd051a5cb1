"""Small hand-written profiles for tests that need one without profiling data first."""

from __future__ import annotations

from typing import Any


def sample_profile_dict(classification: bool = False) -> dict[str, Any]:
    """Two numeric, one categorical and one text feature; regression or classification."""
    if classification:
        prediction: dict[str, Any] = {
            "kind": "classification",
            "count": 1000,
            "classes": ["no", "yes"],
            "class_shares": [0.75, 0.25],
            "score": {"edges": [0.6, 0.8, 0.9], "bin_shares": [0.25, 0.25, 0.25, 0.25],
                      "min": 0.5, "max": 1.0, "mean": 0.78, "std": 0.12},
        }
    else:
        prediction = {"kind": "regression", "count": 1000, "edges": [-1.0, 0.0, 1.0],
                      "bin_shares": [0.15, 0.35, 0.35, 0.15],
                      "min": -3.0, "max": 3.0, "mean": 0.0, "std": 1.0}
    return {
        "schema_version": 1,
        "model": {"name": "churn", "version": "3", "trained_at": "2026-10-01T00:00:00Z",
                  "baseline_metrics": {"mae": 0.5}},
        "options": {"bins": 4, "top_k": 2, "vocabulary_size": 5, "range_margin": 0.1,
                    "max_seen_categories": 10000},
        "rows": 1000,
        "features": [
            {"name": "age", "kind": "numeric", "count": 990, "null_rate": 0.01,
             "edges": [25.0, 35.0, 50.0], "bin_shares": [0.25, 0.25, 0.25, 0.25],
             "min": 18.0, "max": 90.0, "mean": 40.0, "std": 15.0,
             "allowed_range": [10.8, 97.2]},
            {"name": "income", "kind": "numeric", "count": 1000, "null_rate": 0.0,
             "edges": [1000.0, 2000.0], "bin_shares": [0.3, 0.4, 0.3],
             "min": 0.0, "max": 9000.0, "mean": 2100.0, "std": 900.0,
             "allowed_range": [0.0, 9900.0]},
            {"name": "city", "kind": "categorical", "count": 1000, "null_rate": 0.0,
             "top_categories": ["paris", "rome"], "top_shares": [0.6, 0.3], "other_share": 0.1,
             "seen": ["berlin", "madrid", "paris", "rome"], "allowed": None},
            {"name": "review", "kind": "text", "count": 1000, "null_rate": 0.0,
             "vocabulary": ["bad", "good", "great", "service", "the"], "oov_rate": 0.1},
        ],
        "prediction": prediction,
    }
