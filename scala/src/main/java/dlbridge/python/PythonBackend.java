package dlbridge.python;

/**
 * The Python side of the driver, as seen from the JVM.
 *
 * <p>Implemented in Python ({@code dlbridge.backend.backend.Backend}) and called over an
 * authenticated py4j gateway. Only control crosses this interface: names, JSON strings and
 * handles to JVM objects (never rows), and model states as maps of file names to bytes. Every method may throw a
 * {@code py4j.Py4JException} carrying the Python traceback; {@link PythonBridge} turns it into a
 * {@link PythonBackendException}.
 */
public interface PythonBackend {

  /** A JSON object describing the Python process: {@code {"pid": .., "python": .., "executable": .., "dlbridge": ..}}. */
  String info();

  /** The names of all registered Python stages, as a JSON array of strings, sorted. */
  String registeredNames();

  /**
   * Validates {@code paramsJson} (a JSON object) against the registered stage's parameters (a
   * transformer's factory, or an estimator's fit function and predictor; {@code kind} is the kind
   * the calling stage runs, {@code "transformer"} or {@code "estimator"}) and returns the Spark DDL
   * type of its output column. Throws, naming the function, the
   * parameter, what was expected and what was received, if a parameter is unknown or ill-typed,
   * and lists the registered names if {@code function} is unknown.
   */
  String outputType(String function, String kind, String paramsJson);

  /**
   * Builds the Arrow-vectorized UDF that runs the registered stage {@code function} with
   * {@code paramsJson} on the executors: a transformer's factory ({@code state} null), or the
   * predictor of an estimator's fitted model ({@code state}: its files, which reach the executors as
   * a broadcast variable). Returns an
   * {@code org.apache.spark.sql.execution.python.UserDefinedPythonFunction}.
   */
  Object buildUdf(String function, String paramsJson, java.util.Map<String, byte[]> state);

  /**
   * Runs the fit function of the registered estimator {@code function} in Python on
   * {@code dataset} (a {@code Dataset<Row>}) and returns the model state: file names to bytes
   * ({@code .npy}, {@code .json}, raw bytes). Whatever the fit caches is registered as the temp
   * views {@code <fitId>_0}, {@code <fitId>_1}, ..., which the caller drops when the fit ends.
   * {@code initialState} (may be null) is passed to fit functions that declare {@code initialState}.
   * {@code stageUid} is the uid of the JVM stage being fitted: the trainer names it in its progress
   * lines and in the description of its Spark jobs ({@code dlbridge fit <uid> epoch k/n}).
   */
  java.util.Map<String, byte[]> fit(String function, String paramsJson, Object dataset, String fitId,
      java.util.Map<String, byte[]> initialState, String stageUid);

  /**
   * Checks, and completes with the estimator's loader if it has one, a model state of the registered
   * estimator {@code function} that did not come from its fit (for example a model file trained
   * elsewhere); returns the state to use.
   */
  java.util.Map<String, byte[]> loadState(String function, String paramsJson, java.util.Map<String, byte[]> state);
}
