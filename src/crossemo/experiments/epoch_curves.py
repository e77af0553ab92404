"""Per-epoch curves from Lightning to MLflow. Apart from tracking.py so that what only reads the
store (the report) does not import Lightning and torch."""

from __future__ import annotations

import time

from lightning.pytorch.loggers import MLFlowLogger
from mlflow.entities import Metric


class BatchedMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger, writing a fit's per-epoch curves in one batch when the fit ends.

    One store transaction per epoch costs more than a small net's epoch; the curves arrive intact,
    only later. The run belongs to whoever opened it (the scenario runner ends it, or marks it
    failed), so a finished fit does not terminate it.
    """

    BATCH = 1000  # MLflow's limit of metrics per log_batch call

    def __init__(self, tracking_uri: str, run_id: str):
        super().__init__(tracking_uri=tracking_uri, run_id=run_id)
        self._pending: list[Metric] = []

    def log_metrics(self, metrics, step=None) -> None:
        now = int(time.time() * 1000)
        self._pending += [Metric(key=k, value=float(v), timestamp=now, step=step or 0) for k, v in metrics.items()]

    def finalize(self, status: str = "success") -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.BATCH):
            self.experiment.log_batch(self.run_id, metrics=pending[start : start + self.BATCH])
