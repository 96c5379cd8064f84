package org.apache.spark.sql.execution.python.dlbridge

import org.apache.spark.sql.catalyst.expressions.Expression

/**
 * An expression whose `binary` value is one row of packed little-endian float32 features, the
 * input of dlbridge's Keras inference UDF. With `spark.dlbridge.inference.sharedMemory.enabled=true`,
 * [[ProjectedArrowEvalPythonExec]] hands a UDF argument built on one to Python through a
 * [[FeatureRing]] in shared memory, which that UDF reads (`dlbridge.inference.feature_ring`); no other
 * UDF may take such an argument.
 */
trait PackedFeaturesExpression extends Expression
