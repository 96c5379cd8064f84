package dlbridge.ml;

import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

/** KerasEstimator from Java: chained setters, fit, transform, evaluate, summary. */
public final class JavaKerasExample {
  private JavaKerasExample() {}

  /** Trains a small MLP for {@code epochs} and returns its test accuracy. */
  public static double trainAndEvaluate(Dataset<Row> train, Dataset<Row> test, int epochs) {
    KerasModel model = new KerasEstimator()
        .setFeaturesCol("features")
        .setLabelCol("label")
        .setHiddenLayers(new int[] {32})
        .setOptimizer("adam")
        .setOptimizerOptions("{\"learning_rate\": 0.01}")
        .setEpochs(epochs)
        .setBatchSize(32)
        .setMode("async")
        .setSeed(1L)
        .fit(train);
    if (model.summary().epochs() != epochs) {
      throw new IllegalStateException("summary has " + model.summary().epochs() + " epochs");
    }
    return new MulticlassClassificationEvaluator().setMetricName("accuracy").evaluate(model.transform(test));
  }

  /** Fits a one-epoch MLP with {@code handleInvalid} set on the estimator, and sets it on the model too. */
  public static KerasModel fitWithHandleInvalid(Dataset<Row> train, String handleInvalid) {
    KerasModel model = new KerasEstimator()
        .setHiddenLayers(new int[] {4})
        .setEpochs(1)
        .setNumWorkers(1)
        .setSeed(42L)
        .setHandleInvalid(handleInvalid)
        .fit(train);
    return model.setHandleInvalid(handleInvalid);
  }

  /** Sets the per-epoch options (metrics, early stopping, TensorBoard) with Java types. */
  public static KerasEstimator withEpochOptions(KerasEstimator estimator, String tensorboardDir) {
    return estimator.setMetrics(new String[] {"auc", "precision"})
        .setEarlyStoppingPatience(3)
        .setTensorboardDir(tensorboardDir);
  }
}
