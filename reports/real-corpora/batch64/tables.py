"""The tables of ../batch64.md: the three networks fine-tuned in batches of 64 instead of 32, against
the bf16 rerun of the study (../precision/, the same code and precision otherwise), on the same
splits, seeds and pretrained stacks.

    python reports/real-corpora/batch64/tables.py

The runs here were made with `crossemo experiment <scenario> --out ...` in that rerun's project,
`experiments.models: [dbn_paper, dbn_best, mlp_paper]`, each one's `finetune.batch_size: 64`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossemo.experiments.report import compare, comparison_by, load_results

HERE = Path(__file__).parent
BEFORE = HERE.parent / "precision"


def changes() -> pd.DataFrame:
    """Per model and scenario: mean UAR (%) with batches of 32 and of 64, the mean paired-seed change
    over the scenario's cells, and how many cells' 95% intervals hold 0, lie above or below it."""
    table = comparison_by(compare(load_results(BEFORE), load_results(HERE)), ["model", "scenario", "protocol"])
    return table.rename(columns={"before": "batch_32", "after": "batch_64"}).round(1).sort_index()


if __name__ == "__main__":
    print(changes().to_markdown())
