"""Tuning KerasEstimator with CrossValidator (parallelism 2) from PySpark; the tuned model saved and loaded."""
from __future__ import annotations

import numpy as np
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder

from dlbridge.ml import KerasEstimator, KerasModel
from keras_helpers import digits


def test_cross_validator_parallelism_2(spark, tmp_path) -> None:
    train, test = digits(spark)
    est = KerasEstimator(hiddenLayers=[32], batchSize=32, seed=1, verbose=0)
    grid = (ParamGridBuilder()
            .addGrid(est.optimizerOptions, ['{"learning_rate": 0.01}', '{"learning_rate": 0.00001}'])
            .addGrid(est.epochs, [2])
            .build())
    evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
    cv = CrossValidator(estimator=est, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2,
                        parallelism=2, seed=5)
    tuned = cv.fit(train)
    assert len(tuned.avgMetrics) == 2
    assert tuned.avgMetrics[0] > tuned.avgMetrics[1] + 0.2, tuned.avgMetrics  # lr 0.01 learns, 1e-5 barely
    best = tuned.bestModel
    assert isinstance(best, KerasModel) and best.getOptimizerOptions() == '{"learning_rate": 0.01}'
    path = str(tmp_path / "cv")
    tuned.write().overwrite().save(path)
    loaded = CrossValidatorModel.load(path)
    a = best.transform(test).select("probability").toPandas()["probability"]
    b = loaded.bestModel.transform(test).select("probability").toPandas()["probability"]
    np.testing.assert_allclose(np.stack([v.toArray() for v in a]), np.stack([v.toArray() for v in b]), rtol=0, atol=1e-6)
