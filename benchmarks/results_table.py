"""Print benchmarks/results.json as Markdown tables (pasted into benchmarks/RESULTS.md).

    python benchmarks/results_table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results.json"
ORDER = ["notebook_cnn1d", "logmel_cnn", "linear_probe", "encoder_head_noaug", "encoder_head", "encoder_head_pitch"]
CORPORA = ["overall", "RAVDESS", "SAVEE", "TESS", "CREMA-D"]


def markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (numbers to three decimals)."""
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def tables(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    out = []
    for metric in ("UA", "WA", "macro_f1"):
        pivot = df.pivot_table(index=["model", "protocol", "condition"], columns="corpus", values=metric)
        pivot = pivot.reindex(columns=[c for c in CORPORA if c in pivot.columns])
        pivot = pivot.reset_index()
        pivot["_o"] = pivot["model"].map({m: i for i, m in enumerate(ORDER)})
        pivot = pivot.sort_values(["protocol", "_o", "condition"]).drop(columns="_o")
        out.append(f"**{metric}**\n\n" + markdown(pivot))
    return "\n\n".join(out)


def main() -> int:
    if not RESULTS.is_file():
        print(f"{RESULTS} does not exist: run benchmarks/bench_models.py first", file=sys.stderr)
        return 1
    print(tables(json.loads(RESULTS.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
