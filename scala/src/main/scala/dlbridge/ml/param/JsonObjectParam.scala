package dlbridge.ml.param

import scala.util.Try

import org.apache.spark.ml.param.{Param, Params}
import org.json4s.JObject
import org.json4s.jackson.JsonMethods

/**
 * A string param whose value must be a JSON object (for example `{"k": 2.5}`); anything else is
 * rejected when it is set, with a message naming the param and the value received.
 */
class JsonObjectParam(parent: Params, name: String, doc: String)
  extends Param[String](parent, name, doc, (value: String) => JsonObjectParam.isObject(value)) {

  override def validate(value: String): Unit = {
    if (!JsonObjectParam.isObject(value)) {
      throw new IllegalArgumentException(
        s"${parent.getClass.getSimpleName}_${parent.uid} parameter $name expects a JSON object such as " +
          s"""{"learning_rate": 0.01}, but received: ${Option(value).getOrElse("null")}""")
    }
  }
}

/** Helpers for [[JsonObjectParam]]. */
object JsonObjectParam {

  /** True iff `value` parses as a JSON object. */
  def isObject(value: String): Boolean =
    value != null && Try(JsonMethods.parse(value)).toOption.exists(_.isInstanceOf[JObject])
}
