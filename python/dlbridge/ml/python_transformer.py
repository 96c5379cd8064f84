"""``PythonTransformer``: run a registered Python function as a Spark ML stage."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import JavaMLReadable, JavaMLWritable

from dlbridge.ml.wrapper import PythonBackedTransformer, to_json_object

__all__ = ["PythonTransformer"]


class _PythonTransformerParams(Params):
    """Params of :class:`PythonTransformer`, mirroring Scala's ``PythonTransformerParams``."""

    function: Param[str] = Param(
        Params._dummy(), "function",
        "name of the registered Python transformer or estimator to run (see dlbridge.register_transformer and "
        "dlbridge.register_estimator)",
        typeConverter=TypeConverters.toString,
    )
    functionParams: Param[str] = Param(
        Params._dummy(), "functionParams",
        "keyword arguments of the Python function, as a JSON object (default: {})",
        typeConverter=to_json_object,
    )
    inputCol: Param[str] = Param(
        Params._dummy(), "inputCol", "input column name", typeConverter=TypeConverters.toString
    )
    inputCols: Param[List[str]] = Param(
        Params._dummy(), "inputCols", "input column names", typeConverter=TypeConverters.toListString
    )
    outputCol: Param[str] = Param(
        Params._dummy(), "outputCol", "output column name", typeConverter=TypeConverters.toString
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(functionParams="{}", outputCol=self.uid + "__output")

    def getFunction(self) -> str:
        """The registered function name."""
        return self.getOrDefault(self.function)

    def getFunctionParams(self) -> str:
        """The function's keyword arguments as JSON text."""
        return self.getOrDefault(self.functionParams)

    def getInputCol(self) -> str:
        """The input column."""
        return self.getOrDefault(self.inputCol)

    def getInputCols(self) -> List[str]:
        """The input columns."""
        return self.getOrDefault(self.inputCols)

    def getOutputCol(self) -> str:
        """The output column."""
        return self.getOrDefault(self.outputCol)


class PythonTransformer(
    PythonBackedTransformer,
    _PythonTransformerParams,
    JavaMLWritable,
    JavaMLReadable["PythonTransformer"],
):
    """Runs a registered Python function on Arrow batches and appends its result as a column.

    The same stage as Scala's ``dlbridge.ml.PythonTransformer``: params, checks
    and persistence live in Scala; this driver serves as its Python backend.

    Parameters
    ----------
    function : str
        Name given to ``@dlbridge.register_transformer``. No default.
    functionParams : str or dict
        The function's keyword arguments, as a JSON object. Defaults to ``"{}"``.
    inputCol : str
        The one input column (or set ``inputCols``). No default.
    inputCols : list of str
        Several input columns, passed to the function in order. No default.
    outputCol : str
        The new column. Defaults to ``uid + "__output"``.

    Examples
    --------
    >>> t = PythonTransformer(function="plus_k", functionParams={"k": 2.5},
    ...                       inputCol="x", outputCol="y")  # doctest: +SKIP
    >>> t.transform(df).show()  # doctest: +SKIP
    """

    __module__ = "dlbridge.ml"  # pyspark maps it to the JVM class dlbridge.ml.PythonTransformer (see wrapper.py)

    @keyword_only
    def __init__(
        self,
        *,
        function: Optional[str] = None,
        functionParams: Union[str, Dict[str, Any]] = "{}",
        inputCol: Optional[str] = None,
        inputCols: Optional[List[str]] = None,
        outputCol: Optional[str] = None,
    ) -> None:
        super().__init__()
        self._java_obj = self._new_java_obj("dlbridge.ml.PythonTransformer", self.uid)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(
        self,
        *,
        function: Optional[str] = None,
        functionParams: Union[str, Dict[str, Any]] = "{}",
        inputCol: Optional[str] = None,
        inputCols: Optional[List[str]] = None,
        outputCol: Optional[str] = None,
    ) -> "PythonTransformer":
        """Sets the params given as keywords."""
        return self._set(**self._input_kwargs)

    def setFunction(self, value: str) -> "PythonTransformer":
        """Sets :py:attr:`function`."""
        return self._set(function=value)

    def setFunctionParams(self, value: Union[str, Dict[str, Any]]) -> "PythonTransformer":
        """Sets :py:attr:`functionParams` (a dict or JSON object text)."""
        return self._set(functionParams=value)

    def setInputCol(self, value: str) -> "PythonTransformer":
        """Sets :py:attr:`inputCol`."""
        return self._set(inputCol=value)

    def setInputCols(self, value: List[str]) -> "PythonTransformer":
        """Sets :py:attr:`inputCols`."""
        return self._set(inputCols=value)

    def setOutputCol(self, value: str) -> "PythonTransformer":
        """Sets :py:attr:`outputCol`."""
        return self._set(outputCol=value)
