import json
from pathlib import Path

import numpy as np

from analysis.jsonio import json_ready


def test_json_ready_converts_numpy_and_non_finite_values_exactly():
    """Every value survives json.dumps; finite numbers keep their exact value (float64 -> Python
    float is exact); NaN/inf become None; 0-d arrays become scalars; paths become strings."""
    v = {1: np.array([[1.5, np.nan], [np.inf, -2.0]]), "b": np.float32(0.25), "c": np.int64(7),
         "d": np.bool_(True), "e": (np.array(3.0), None, "x"), "f": Path("a/b")}
    out = json_ready(v)
    assert out == {"1": [[1.5, None], [None, -2.0]], "b": 0.25, "c": 7, "d": True,
                   "e": [3.0, None, "x"], "f": "a/b"}
    assert json.loads(json.dumps(out)) == out
