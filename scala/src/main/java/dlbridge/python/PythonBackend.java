package dlbridge.python;

/**
 * The Python side of the driver, as seen from the JVM.
 *
 * <p>Implemented in Python ({@code dlbridge.backend.backend.Backend}) and called over an
 * authenticated py4j gateway. Only control crosses this interface: names, JSON strings and
 * handles to JVM objects that the Python side created (never rows). Every method may throw a
 * {@code py4j.Py4JException} carrying the Python traceback; {@link PythonBridge} turns it into a
 * {@link PythonBackendException}.
 */
public interface PythonBackend {

  /** A JSON object describing the Python process: {@code {"pid": .., "python": .., "executable": ..}}. */
  String info();

  /** The names of all registered Python stages, as a JSON array of strings, sorted. */
  String registeredNames();

  /**
   * Validates {@code paramsJson} (a JSON object) against the registered function's parameters
   * and returns the Spark DDL type of its output column. Throws, naming the function, the
   * parameter, what was expected and what was received, if a parameter is unknown or ill-typed,
   * and lists the registered names if {@code function} is unknown.
   */
  String outputType(String function, String paramsJson);

  /**
   * Builds the Arrow-vectorized pandas UDF that runs {@code function} with {@code paramsJson} on
   * the executors. Returns an {@code org.apache.spark.sql.execution.python.UserDefinedPythonFunction}.
   */
  Object buildUdf(String function, String paramsJson);

  /**
   * Runs a named Python entry with JSON arguments and JVM handles (for example a DataFrame) and
   * returns its JSON result or a JVM object. This is the extension point the Keras stages use.
   */
  Object invoke(String entry, String argsJson, Object[] handles);
}
