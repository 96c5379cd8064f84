package dlbridge.examples;

import java.util.Arrays;

import dlbridge.ml.KerasEstimator;

import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.ml.feature.VectorAssembler;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import static org.apache.spark.sql.functions.col;

/**
 * The digits example in Java: train a Keras MLP, evaluate, save, reload, predict.
 * Usage: JavaDigitsExample &lt;digits.csv.gz&gt; &lt;pipeline dir&gt; [epochs]
 */
public final class JavaDigitsExample {
  private JavaDigitsExample() {}

  public static void main(String[] args) throws Exception {
    SparkSession spark = SparkSession.builder().appName("dlbridge digits (Java)").getOrCreate();
    try {
      int epochs = args.length > 2 ? Integer.parseInt(args[2]) : 14;
      Dataset<Row> raw = spark.read().option("inferSchema", "true").csv(args[0]);
      String[] names = raw.columns();
      String[] pixels = Arrays.copyOf(names, 64);
      Column[] columns = new Column[65];
      for (int i = 0; i < 64; i++) {
        columns[i] = col(pixels[i]).divide(16.0).as(pixels[i]);
      }
      columns[64] = col(names[64]).cast("double").as("label");
      Dataset<Row>[] split = raw.select(columns).randomSplit(new double[] {0.8, 0.2}, 7L);

      KerasEstimator estimator = new KerasEstimator()
          .setFeaturesCol("features").setLabelCol("label")
          .setHiddenLayers(new int[] {64})
          .setOptimizer("adam").setOptimizerOptions("{\"learning_rate\": 0.005}")
          .setEpochs(epochs).setBatchSize(32).setMode("hogwild").setNumWorkers(2).setSeed(1);
      VectorAssembler assembler = new VectorAssembler().setInputCols(pixels).setOutputCol("features");
      PipelineModel model = new Pipeline().setStages(new PipelineStage[] {assembler, estimator}).fit(split[0]);

      MulticlassClassificationEvaluator evaluator = new MulticlassClassificationEvaluator().setMetricName("accuracy");
      double accuracy = evaluator.evaluate(model.transform(split[1]));
      model.write().overwrite().save(args[1]);
      double reloaded = evaluator.evaluate(PipelineModel.load(args[1]).transform(split[1]));
      System.out.printf("dlbridge digits (Java): test accuracy %.4f, after save/load %.4f%n", accuracy, reloaded);
    } finally {
      spark.stop();
    }
  }
}
