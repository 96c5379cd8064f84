package dlbridge.ml;

import java.io.IOException;
import java.util.List;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;

/**
 * Uses PythonEstimator and PythonModel from Java: setters chain, {@code String[]} columns, the
 * static {@code PythonModel.load}; no Scala-only types needed. Needs the module {@code centroids}
 * (examples/python/centroids.py) in {@code spark.dlbridge.python.modules}.
 */
public final class JavaPythonEstimatorExample {
  private JavaPythonEstimatorExample() {}

  /** Two classes around (-1, -1) and (1, 1), points within 0.5 of their centre: ids [from, until). */
  public static Dataset<Row> data(SparkSession spark, long from, long until) {
    return spark.range(from, until).select(
        functions.col("id").mod(2).multiply(2).minus(1)
            .plus(functions.sin(functions.col("id")).multiply(0.5)).as("a"),
        functions.col("id").mod(2).multiply(2).minus(1)
            .plus(functions.cos(functions.col("id")).multiply(0.5)).as("b"),
        functions.col("id").mod(2).cast("double").as("label"));
  }

  /**
   * Fits centroid_classifier on 200 rows, saves the model to {@code path} and loads it again;
   * returns {accuracy of the fitted model, accuracy of the loaded one, 1 if their predictions are
   * identical else 0} on 100 other rows.
   */
  public static double[] fitSaveLoad(SparkSession spark, String path) throws IOException {
    PythonEstimator estimator = new PythonEstimator()
        .setFunction("centroid_classifier")
        .setFunctionParams("{\"shrink\": 0.1}")
        .setInputCols(new String[] {"a", "b"})
        .setLabelCol("label")
        .setOutputCol("prediction");
    PythonModel model = estimator.fit(data(spark, 0, 200));
    model.write().overwrite().save(path);
    PythonModel loaded = PythonModel.load(path);

    Dataset<Row> test = data(spark, 200, 300);
    List<Row> fitted = model.transform(test).orderBy("a").select("prediction").collectAsList();
    List<Row> reloaded = loaded.transform(test).orderBy("a").select("prediction").collectAsList();
    return new double[] {accuracy(model.transform(test)), accuracy(loaded.transform(test)),
        fitted.equals(reloaded) ? 1.0 : 0.0};
  }

  private static double accuracy(Dataset<Row> predicted) {
    long right = predicted.filter(functions.col("prediction").equalTo(functions.col("label"))).count();
    return (double) right / predicted.count();
  }
}
