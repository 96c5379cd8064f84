"""``PythonEstimator`` / ``PythonModel``: a registered Python estimator as Spark ML stages."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import JavaMLReadable, JavaMLWritable
from pyspark.ml.wrapper import JavaEstimator, JavaModel
from pyspark.sql import DataFrame

from dlbridge.ml.python_transformer import _PythonTransformerParams
from dlbridge.ml.wrapper import ensure_driver_backend, require_classic

__all__ = ["PythonEstimator", "PythonModel"]


class _PythonEstimatorParams(Params):
    """Params of :class:`PythonEstimator` / :class:`PythonModel`, mirroring Scala's ``PythonEstimatorParams``."""

    function = _PythonTransformerParams.function
    functionParams = _PythonTransformerParams.functionParams
    inputCols = _PythonTransformerParams.inputCols
    outputCol = _PythonTransformerParams.outputCol
    labelCol: Param[str] = Param(
        Params._dummy(), "labelCol", "label column name, passed to the fit function when set (optional, no default)",
        typeConverter=TypeConverters.toString,
    )
    weightCol: Param[str] = Param(
        Params._dummy(), "weightCol",
        "weight column name, passed to the fit function when set (optional, no default)",
        typeConverter=TypeConverters.toString,
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(functionParams="{}", outputCol=self.uid + "__output")

    getFunction = _PythonTransformerParams.getFunction
    getFunctionParams = _PythonTransformerParams.getFunctionParams
    getInputCols = _PythonTransformerParams.getInputCols
    getOutputCol = _PythonTransformerParams.getOutputCol

    def getLabelCol(self) -> str:
        """The label column."""
        return self.getOrDefault(self.labelCol)

    def getWeightCol(self) -> str:
        """The weight column."""
        return self.getOrDefault(self.weightCol)


class PythonEstimator(JavaEstimator, _PythonEstimatorParams, JavaMLWritable, JavaMLReadable["PythonEstimator"]):
    """Fits a Python estimator registered with ``@dlbridge.register_estimator`` (Scala's ``dlbridge.ml.PythonEstimator``).

    The fit function runs in this driver on the training DataFrame and returns
    the model state; the :class:`PythonModel` runs the estimator's predictor on
    the executors. Params, checks and persistence live in Scala.

    Parameters
    ----------
    function : str
        Name given to ``@dlbridge.register_estimator``. No default.
    functionParams : str or dict
        Keyword arguments of the fit function and predictor, as a JSON object.
        Defaults to ``"{}"``.
    inputCols : list of str
        Input columns: passed to the fit function as ``inputCols`` and to the
        batch function as Series, in order. No default.
    labelCol : str, optional
        Passed to the fit function when set. No default.
    weightCol : str, optional
        Passed to the fit function when set. No default.
    outputCol : str
        The model's output column. Defaults to ``uid + "__output"``.

    Examples
    --------
    >>> est = PythonEstimator(function="centroid_classifier", functionParams={"shrink": 0.1},
    ...                       inputCols=["a", "b"], labelCol="label", outputCol="prediction")  # doctest: +SKIP
    >>> est.fit(train).transform(test)  # doctest: +SKIP
    """

    __module__ = "dlbridge.ml"  # pyspark maps it to the JVM class dlbridge.ml.PythonEstimator (see wrapper.py)

    @keyword_only
    def __init__(self, *, function: Optional[str] = None, functionParams: Union[str, Dict[str, Any]] = "{}",
                 inputCols: Optional[List[str]] = None, labelCol: Optional[str] = None,
                 weightCol: Optional[str] = None, outputCol: Optional[str] = None) -> None:
        super().__init__()
        self._java_obj = self._new_java_obj("dlbridge.ml.PythonEstimator", self.uid)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, function: Optional[str] = None, functionParams: Union[str, Dict[str, Any]] = "{}",
                  inputCols: Optional[List[str]] = None, labelCol: Optional[str] = None,
                  weightCol: Optional[str] = None, outputCol: Optional[str] = None) -> "PythonEstimator":
        """Sets the params given as keywords."""
        return self._set(**self._input_kwargs)

    def setFunction(self, value: str) -> "PythonEstimator":
        """Sets :py:attr:`function`."""
        return self._set(function=value)

    def setFunctionParams(self, value: Union[str, Dict[str, Any]]) -> "PythonEstimator":
        """Sets :py:attr:`functionParams` (a dict or JSON object text)."""
        return self._set(functionParams=value)

    def setInputCols(self, value: List[str]) -> "PythonEstimator":
        """Sets :py:attr:`inputCols`."""
        return self._set(inputCols=value)

    def setLabelCol(self, value: str) -> "PythonEstimator":
        """Sets :py:attr:`labelCol`."""
        return self._set(labelCol=value)

    def setWeightCol(self, value: str) -> "PythonEstimator":
        """Sets :py:attr:`weightCol`."""
        return self._set(weightCol=value)

    def setOutputCol(self, value: str) -> "PythonEstimator":
        """Sets :py:attr:`outputCol`."""
        return self._set(outputCol=value)

    def _fit(self, dataset: DataFrame) -> "PythonModel":
        ensure_driver_backend(dataset.sparkSession)
        return super()._fit(dataset)  # type: ignore[return-value]

    def _create_model(self, java_model: Any) -> "PythonModel":
        return PythonModel(java_model)


class PythonModel(JavaModel, _PythonEstimatorParams, JavaMLWritable, JavaMLReadable["PythonModel"]):
    """The model a :class:`PythonEstimator` fitted (Scala's ``dlbridge.ml.PythonModel``).

    ``transform`` appends ``outputCol``, computed on the executors by the
    estimator's predictor, built once per Python worker from the model state
    (which reaches them by broadcast).
    """

    __module__ = "dlbridge.ml"  # pyspark maps it to the JVM class dlbridge.ml.PythonModel (see wrapper.py)

    @property
    def stateFiles(self) -> List[str]:
        """The names of the model state's files, e.g. ``["centroids.npy", "classes.npy"]``.

        Not available under Spark Connect (``NotImplementedError``).
        """
        require_classic("PythonModel.stateFiles", "save the model (model.write().save(path)): its data/ "
                        "directory on the server holds one file per state entry.")
        return list(self._call_java("stateFiles"))

    def setInputCols(self, value: List[str]) -> "PythonModel":
        """Sets :py:attr:`inputCols`."""
        return self._set(inputCols=value)

    def setOutputCol(self, value: str) -> "PythonModel":
        """Sets :py:attr:`outputCol`."""
        return self._set(outputCol=value)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        ensure_driver_backend(dataset.sparkSession)
        return super()._transform(dataset)
