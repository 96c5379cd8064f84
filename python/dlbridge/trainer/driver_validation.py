"""Validation on the driver: a small validation split, collected once, is evaluated there after each epoch.

A validation job per epoch costs a few tenths of a second of Spark's own work
(building the job, starting its tasks, streaming the cached rows to Python),
and it needs task slots, which the tasks of a one-job fit
(:mod:`dlbridge.trainer.chained`) hold while they wait at an epoch's end. So a
validation split of at most :data:`DRIVER_BYTES` (as float32) is collected to
the driver once, when the fit starts, and evaluated there against the
parameter server's weights with the workers' own evaluation
(:func:`dlbridge.trainer.worker.evaluate_partition`): the same loss,
accuracy and metric states a validation job would return, merged the same
way. A larger split keeps its validation job per epoch.
"""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("dlbridge.trainer")

#: The largest validation split (features, targets and weights as float32) evaluated on the driver.
DRIVER_BYTES = 64 * 2**20


def collect_if_small(validation: Any, rows: int, values_per_row: int) -> list | None:
    """The validation split's Arrow record batches, or ``None`` when it is larger than :data:`DRIVER_BYTES`.

    Parameters
    ----------
    validation : pyspark.sql.DataFrame
        The cached validation split (columns as the workers read them).
    rows : int
        Its row count, as counted when it was cached (invalid rows included: an upper bound).
    values_per_row : int
        Features, targets and the weight of a row.
    """
    if 4 * rows * values_per_row > DRIVER_BYTES:
        return None
    batches = validation.toArrow().to_batches()
    logger.info("dlbridge trainer: %d validation rows collected to the driver, evaluated there after each epoch",
                sum(b.num_rows for b in batches))
    return batches


def evaluate(spec: Any, batches: list) -> list[dict[str, Any]]:
    """The statistics rows of the server's current weights on ``batches``, as a validation job returns them."""
    from dlbridge.trainer.worker import evaluate_partition

    return [row for batch in evaluate_partition(spec, iter(batches)) for row in batch.to_pylist()]
