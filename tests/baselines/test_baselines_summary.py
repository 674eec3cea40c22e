"""summarise(): per-query statistics as JSON-ready lists."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jaxnas.baselines import summarise
from jaxnas.errors import ConfigError


def test_statistics_per_query():
    x = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 4.0], [2.0, 4.0, 4.0]], np.float32)
    out = summarise(x, global_best=5.0, global_worst=1.0)
    assert out["queries"] == [1, 2, 3] and out["runs"] == 3
    np.testing.assert_allclose(out["mean"], [2.0, 3.0, 4.0])
    # Population std (ddof=0) for the spread; sample std (ddof=1) / sqrt(S) for the SEM.
    np.testing.assert_allclose(out["std"], [math.sqrt(2 / 3), math.sqrt(2 / 3), 0.0])
    np.testing.assert_allclose(out["sem"], [1 / math.sqrt(3), 1 / math.sqrt(3), 0.0])
    np.testing.assert_allclose(out["normalised_mean"], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(out["normalised_std"], np.array(out["std"]) / 4)
    assert out["final_mean"] == pytest.approx(4.0)
    assert out["normalised_final_mean"] == pytest.approx(0.75)
    assert all(type(v) is float for v in out["mean"] + out["sem"] + out["normalised_std"])
    json.dumps(out, allow_nan=False)


def test_single_run_and_flat_space():
    out = summarise(np.array([[1.0, 2.0]]), global_best=2.0, global_worst=2.0)
    assert out["std"] == [0.0, 0.0] and out["sem"] == [0.0, 0.0]
    assert out["normalised_mean"] == [1.0, 1.0]
    assert "normalised_mean" not in summarise(np.array([[1.0, 2.0]]))


def test_bad_inputs():
    with pytest.raises(ConfigError, match="shape"):
        summarise(np.zeros(5))
    with pytest.raises(ConfigError, match="NaN"):
        summarise(np.array([[1.0, np.nan]]))
    with pytest.raises(ConfigError, match="both"):
        summarise(np.zeros((2, 2)), global_best=1.0)
    with pytest.raises(ConfigError, match="smaller"):
        summarise(np.zeros((2, 2)), global_best=0.0, global_worst=1.0)
