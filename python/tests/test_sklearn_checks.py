"""scikit-learn's estimator checks on every estimator (README: "From Python" lists the
expected failures and why)."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from mmfuse import LowRankFusion, MKLClassifier, MKLRegressor

# Checks expected to fail, with the reason (the README lists the same).
EXPECTED_FAILED = {}


def expected_failed(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [
        MKLClassifier(),
        MKLRegressor(),
        LowRankFusion(random_state=0),
        LowRankFusion(loss="xent", random_state=0),
    ],
    expected_failed_checks=expected_failed,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
