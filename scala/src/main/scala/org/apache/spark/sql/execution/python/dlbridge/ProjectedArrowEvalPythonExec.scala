package org.apache.spark.sql.execution.python.dlbridge

import java.io.File

import scala.collection.mutable.ArrayBuffer
import scala.jdk.CollectionConverters._

import org.apache.arrow.vector.VarBinaryVector

import org.apache.spark.{JobArtifactSet, PartitionEvaluator, SparkEnv, TaskContext}
import org.apache.spark.api.python.ChainedPythonFunctions
import org.apache.spark.internal.config.BUFFER_SIZE
import org.apache.spark.internal.config.Python.PYTHON_UDF_PIPELINED_EXECUTION
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{Attribute, AttributeSet, Expression, JoinedRow, MutableProjection, NamedArgumentExpression, NamedExpression, PythonUDF, UnsafeProjection, UnsafeRow}
import org.apache.spark.sql.execution.{SparkPlan, UnaryExecNode}
import org.apache.spark.sql.execution.metric.SQLMetric
import org.apache.spark.sql.errors.QueryExecutionErrors
import org.apache.spark.sql.execution.arrow.ArrowWriter
import org.apache.spark.sql.execution.arrow.dlbridge.{BatchArrowWriter, RingBinaryWriter}
import org.apache.spark.sql.execution.python.{ArrowEvalPythonEvaluatorFactory, ArrowPythonRunner, ArrowPythonWithNamedArgumentRunner, BatchedPythonArrowInput, HybridRowQueue, PythonSQLMetrics}
import org.apache.spark.sql.execution.python.EvalPythonExec.ArgumentMetadata
import org.apache.spark.sql.types.{BinaryType, DataType, StructField, StructType, UserDefinedType}
import org.apache.spark.util.Utils

/**
 * Spark's `ArrowEvalPythonExec` and the projection above it as one operator, planned for dlbridge's
 * own Arrow UDFs by [[ProjectedArrowEvalPython]] (Spark's operator runs every other Python UDF).
 *
 * It runs the UDFs exactly as Spark's operator does: the same Arrow runner, Python workers, batch
 * size, configuration and metrics. Each input row is queued and its UDF arguments are sent to
 * Python; each result is joined back to its queued row. Two differences save copies of every row,
 * which dominate when rows are wide (a 784-value ML `Vector` is a 6.3 KB row):
 *  - the input rows are not copied before they are queued. Spark's operator copies each one
 *    (`child.execute().map(_.copy())`) and then the queue copies it again; here the queue's copy is
 *    the only one. A row is used only before the next one is read (queued and projected to the
 *    UDF's arguments), in both of Spark's execution modes, so the child may reuse its row buffer;
 *  - the joined row is projected once, straight to `projectList` (the columns the query keeps and
 *    the fields it takes from the UDF's result), where Spark materializes the joined row and the
 *    projection above copies it again.
 * Arguments that can ([[ReusableBufferExpression]], e.g. dlbridge's packed features) write every
 * row's value into one array, since the Arrow writer copies each argument row at once. The batches
 * are written by [[org.apache.spark.sql.execution.arrow.dlbridge.BatchArrowWriter]], which does not
 * zero a binary column's value bytes between batches (4 MiB a batch of packed features).
 * With `spark.dlbridge.inference.sharedMemory.enabled=true` (and `/dev/shm`), the packed features
 * argument ([[PackedFeaturesExpression]]) reaches Python through a [[FeatureRing]] in shared memory
 * instead of the batches; the runner then writes its batches from its own thread, as with Spark's
 * `spark.python.udf.pipelined.enabled`.
 *
 * @param projectList the columns this operator outputs, over the child's columns and `resultAttrs`
 * @param udfs        the Arrow UDFs, none of them chained (an argument is never another Python UDF)
 * @param resultAttrs one attribute per UDF, holding its result
 * @param evalType    the UDFs' `PythonEvalType`, as in `ArrowEvalPythonExec`
 */
case class ProjectedArrowEvalPythonExec(
    projectList: Seq[NamedExpression],
    udfs: Seq[PythonUDF],
    resultAttrs: Seq[Attribute],
    child: SparkPlan,
    evalType: Int) extends UnaryExecNode with PythonSQLMetrics {

  override def output: Seq[Attribute] = projectList.map(_.toAttribute)

  override def producedAttributes: AttributeSet = AttributeSet(resultAttrs)

  // As ArrowEvalPythonExec: the job's artifacts, and the session id when worker logging is on.
  private[this] val jobArtifactUUID = JobArtifactSet.getCurrentJobArtifactState.map(_.uuid)
  private[this] val sessionUUID = Option(session).collect {
    case s if s.sessionState.conf.pythonWorkerLoggingEnabled => s.sessionUUID
  }

  override protected def doExecute(): RDD[InternalRow] = {
    val factory = new ProjectedEvaluatorFactory(child.output, udfs, resultAttrs, projectList,
      conf.arrowMaxRecordsPerBatch, evalType, conf.sessionLocalTimeZone, conf.arrowUseLargeVarTypes,
      ArrowPythonRunner.getPythonRunnerConfMap(conf), pythonMetrics, jobArtifactUUID, sessionUUID,
      FeatureRing.enabled(conf))
    child.execute().mapPartitionsWithIndexInternal { (partition, rows) =>
      factory.createEvaluator().eval(partition, rows)
    }
  }

  override protected def withNewChildInternal(newChild: SparkPlan): ProjectedArrowEvalPythonExec =
    copy(child = newChild)
}

/**
 * Spark's Arrow UDF evaluation (`evaluate`: the runner and the batches it returns) with
 * [[ProjectedArrowEvalPythonExec]]'s evaluation of a partition around it.
 */
private class ProjectedEvaluatorFactory(
    childOutput: Seq[Attribute],
    udfs: Seq[PythonUDF],
    resultAttrs: Seq[Attribute],
    projectList: Seq[NamedExpression],
    batchSize: Int,
    evalType: Int,
    sessionLocalTimeZone: String,
    largeVarTypes: Boolean,
    pythonRunnerConf: Map[String, String],
    pythonMetrics: Map[String, SQLMetric],
    jobArtifactUUID: Option[String],
    sessionUUID: Option[String],
    sharedMemory: Boolean)
  extends ArrowEvalPythonEvaluatorFactory(childOutput, udfs, childOutput ++ resultAttrs, batchSize, evalType,
    sessionLocalTimeZone, largeVarTypes, pythonRunnerConf, pythonMetrics, jobArtifactUUID, sessionUUID) {

  /**
   * Spark's `evaluate` (the runner, and the UDFs' result rows from the batches it returns), with
   * the runner's batches written by [[BatchArrowWriter]], and the argument `ring._1` by a
   * [[RingBinaryWriter]] through `ring._2` when given (the runner then writes from its own thread,
   * which waits for a free slot while the task's thread reads results).
   */
  private def evaluateBatches(
      funcs: Seq[(ChainedPythonFunctions, Long)],
      argMetas: Array[Array[ArgumentMetadata]],
      iter: Iterator[InternalRow],
      schema: StructType,
      context: TaskContext,
      ring: Option[(Int, FeatureRingTransport)]): Iterator[InternalRow] = {
    val outputTypes = resultAttrs.map(_.dataType.transformRecursively { case udt: UserDefinedType[_] => udt.sqlType })
    val runner = new ArrowPythonWithNamedArgumentRunner(funcs, evalType, argMetas, schema, sessionLocalTimeZone,
        largeVarTypes, pythonRunnerConf, pythonMetrics, jobArtifactUUID, sessionUUID) with BatchedPythonArrowInput {
      override val pipelinedEnabled: Boolean = SparkEnv.get.conf.get(PYTHON_UDF_PIPELINED_EXECUTION) || ring.isDefined
      override protected lazy val arrowWriter: ArrowWriter = BatchArrowWriter.create(root, {
        case (index, binary: VarBinaryVector) if ring.exists(_._1 == index) => new RingBinaryWriter(binary, ring.get._2)
      })
    }
    runner.compute(Iterator(iter), context.partitionId(), context).flatMap { batch =>
      ring.foreach(_._2.answered(batch.numRows()))
      val actualTypes = (0 until batch.numCols()).map(i => batch.column(i).dataType())
      if (!DataType.equalsIgnoreCompatibleCollation(outputTypes, actualTypes)) {
        throw QueryExecutionErrors.arrowDataTypeMismatchError("pandas_udf()", outputTypes, actualTypes)
      }
      batch.rowIterator.asScala
    }
  }

  /** Whether `argument` is a row of packed float32 features, which the shared memory may carry. */
  private def isPackedFeatures(argument: Expression): Boolean =
    argument.dataType == BinaryType && argument.exists(_.isInstanceOf[PackedFeaturesExpression])

  override def createEvaluator(): PartitionEvaluator[InternalRow, InternalRow] =
    new PartitionEvaluator[InternalRow, InternalRow] {
      override def eval(partition: Int, inputs: Iterator[InternalRow]*): Iterator[InternalRow] = {
        val context = TaskContext.get()
        val arguments = ArrayBuffer.empty[Expression] // each distinct argument once, as Spark sends them
        val argumentMetadata = udfs.map(_.children.map { argument =>
          val (name, value) = argument match {
            case NamedArgumentExpression(key, v) => (Some(key), v)
            case other => (None, other)
          }
          val known = arguments.indexWhere(_.semanticEquals(value))
          val offset = if (known >= 0) known else { arguments += value; arguments.length - 1 }
          ArgumentMetadata(offset, name, isTableArg = false)
        }.toArray).toArray
        val ringArgument = if (sharedMemory) arguments.indexWhere(isPackedFeatures) else -1
        val ring = Option.when(ringArgument >= 0)(ringArgument ->
          new FeatureRingTransport(batchSize, SparkEnv.get.conf.get(BUFFER_SIZE), context))
        // Pipelined execution reads the input in a writer thread and the results in the task's;
        // the shared memory always runs so, since its writer waits for the reader to free slots.
        val pipelined = SparkEnv.get.conf.get(PYTHON_UDF_PIPELINED_EXECUTION) || ring.isDefined
        val queue = HybridRowQueue(context.taskMemoryManager(),
          new File(Utils.getLocalDir(SparkEnv.get.conf)), childOutput.length, pipelined)
        context.addTaskCompletionListener[Unit](_ => queue.close())

        // the Arrow writer copies each argument row at once, so packed features may share one buffer
        val toArguments = MutableProjection.create(arguments.toSeq.map(_.transformUp {
          case reusable: ReusableBufferExpression => reusable.withReusedBuffer
        }), childOutput)
        toArguments.initialize(partition)
        val argumentSchema = StructType(arguments.zipWithIndex.map { case (e, i) => StructField(s"_$i", e.dataType) }.toSeq)

        val argumentRows = inputs.head.map { row =>
          queue.add(row.asInstanceOf[UnsafeRow]) // the queue copies the row's bytes: the only copy kept
          toArguments(row)
        }
        val functions = udfs.map(udf => (ChainedPythonFunctions(Seq(udf.func)), udf.resultId.id))
        val results = evaluateBatches(functions, argumentMetadata, argumentRows, argumentSchema, context, ring)

        val joined = new JoinedRow
        val toOutput = UnsafeProjection.create(projectList, childOutput ++ resultAttrs)
        toOutput.initialize(partition)
        results.map(result => toOutput(joined(queue.remove(), result)))
      }
    }
}
