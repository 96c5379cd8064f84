// The digits example for spark-shell (run with -I; tests/python/test_examples.py runs it this way):
//   spark-shell --master "local[2]" --jars <dlbridge jar> --conf spark.driver.args="<digits.csv.gz> <dir> [epochs]" -I examples/spark-shell/digits.scala
import dlbridge.ml.KerasEstimator
import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator
import org.apache.spark.ml.feature.VectorAssembler
import org.apache.spark.sql.functions.col

val Array(csv, dir, epochsArg @ _*) = spark.conf.get("spark.driver.args").split(" ")
val epochs = epochsArg.headOption.map(_.toInt).getOrElse(14)
val raw = spark.read.option("inferSchema", "true").csv(csv)
val pixels = raw.columns.take(64)
val data = raw.select(pixels.map(c => (col(c) / 16.0).as(c)) :+ col(raw.columns(64)).cast("double").as("label"): _*)
val Array(train, test) = data.randomSplit(Array(0.8, 0.2), seed = 7)

val estimator = new KerasEstimator().setHiddenLayers(Array(64)).setOptimizer("adam")
  .setOptimizerOptions("""{"learning_rate": 0.005}""").setEpochs(epochs).setBatchSize(32).setSeed(1)
val model = new Pipeline().setStages(Array(new VectorAssembler().setInputCols(pixels).setOutputCol("features"), estimator)).fit(train)
val evaluator = new MulticlassClassificationEvaluator().setMetricName("accuracy")
val accuracy = evaluator.evaluate(model.transform(test))
model.write.overwrite().save(dir)
val reloaded = evaluator.evaluate(PipelineModel.load(dir).transform(test))
println(f"dlbridge digits (spark-shell): test accuracy $accuracy%.4f, after save/load $reloaded%.4f")
System.exit(0)
