"""Python transformers used by the examples (shipped with ``--py-files``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dlbridge import register_transformer


@register_transformer("polynomial", returns="double")
def polynomial(coefficients: list = [0.0, 1.0]):  # noqa: B006 (read-only default)
    """Evaluates ``c0 + c1*x + c2*x**2 + ...`` on a numeric column, vectorised with numpy."""
    c = np.asarray(coefficients, dtype="float64")[::-1]

    def run(x: pd.Series) -> pd.Series:
        return pd.Series(np.polyval(c, x.to_numpy("float64")))

    return run
