package dlbridge.ml;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;

/** Uses PythonTransformer from Java: setters chain, no Scala-only types needed. */
public final class JavaPythonTransformerExample {
  private JavaPythonTransformerExample() {}

  /** Adds k to column x through the registered Python function plus_k; returns the sum of y. */
  public static double sumPlusK(SparkSession spark, double k) {
    Dataset<Row> df = spark.range(0, 100).select(functions.col("id").cast("double").as("x"));
    PythonTransformer t = new PythonTransformer()
        .setFunction("plus_k")
        .setFunctionParams("{\"k\": " + k + "}")
        .setInputCols(new String[] {"x"})
        .setOutputCol("y");
    return t.transform(df).agg(functions.sum("y")).head().getDouble(0);
  }
}
