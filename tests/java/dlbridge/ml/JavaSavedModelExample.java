package dlbridge.ml;

import java.util.List;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

/** KerasModel.fromSavedModel from Java: the static with and without an endpoint, transform, an endpoint error. */
public final class JavaSavedModelExample {
  private JavaSavedModelExample() {}

  /** The predictions of the SavedModel at {@code path} (endpoint {@code endpoint}, a regressor) for {@code data}. */
  public static double[] predict(String path, String endpoint, Dataset<Row> data) {
    KerasModel model = KerasModel.fromSavedModel(path, endpoint).setTask("regression");
    List<Row> rows = model.transform(data).select("prediction").collectAsList();
    double[] predictions = new double[rows.size()];
    for (int i = 0; i < predictions.length; i++) {
      predictions[i] = rows.get(i).getDouble(0);
    }
    return predictions;
  }

  /** The message of the error {@code KerasModel.fromSavedModel(path)} (endpoint serving_default) raises. */
  public static String defaultEndpointError(String path) {
    try {
      KerasModel.fromSavedModel(path);
    } catch (Exception e) {
      return e.getMessage();
    }
    throw new IllegalStateException("KerasModel.fromSavedModel(" + path + ") did not fail");
  }
}
