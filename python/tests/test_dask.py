"""Dask: tiled Gram matrices on a LocalCluster, and grid search under joblib's Dask backend."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import joblib  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import mmfuse  # noqa: E402
import mmfuse.dask  # noqa: E402
from mmfuse import MKLClassifier  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(3).normal(size=(700, 12)) * 2 + 5


def test_tiles_equal_the_full_gram(client, X):
    Xd = da.from_array(X, chunks=(200, 12))
    K = mmfuse.dask.gram(Xd, kernel="rbf")
    # upper tiles once, lower tiles as their transposes: 4 chunks -> 10 kernel tasks
    tiles = [k for k in K.__dask_graph__() if str(k[0] if isinstance(k, tuple) else k).startswith("mmfuse-gram-tile")]
    assert len(tiles) == 10
    Kc = K.compute()
    ref = mmfuse.gram(X, kernel="rbf")
    assert np.array_equal(Kc, Kc.T) and np.all(np.diag(Kc) == 1.0)
    np.testing.assert_allclose(Kc, ref, rtol=0, atol=1e-13)
    # the diagonal tiles are the engine's K(X_i, X_i) exactly
    assert np.array_equal(Kc[:200, :200], mmfuse.gram(X[:200], kernel="rbf"))


def test_float32_and_other_kernels(client, X):
    Xd = da.from_array(X.astype(np.float32), chunks=(300, 6))
    K = mmfuse.dask.gram(Xd, kernel="poly", degree=2, coef0=0.5).compute()
    assert K.dtype == np.float32
    ref = mmfuse.gram(X.astype(np.float32), kernel="poly", degree=2, coef0=0.5)
    np.testing.assert_allclose(K, ref, rtol=2e-6, atol=1e-4)


@pytest.mark.parametrize("how", ["trace", "unit-diag", "center"])
def test_normalisations_use_the_whole_matrix(client, X, how):
    Xd = da.from_array(X, chunks=(250, 12))
    K = mmfuse.dask.gram(Xd, kernel="linear", normalize=how).compute()
    ref = mmfuse.gram(X, kernel="linear", normalize=how)
    np.testing.assert_allclose(K, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_bad_normalisation_is_an_error(X):
    with pytest.raises(ValueError, match="normalis"):
        mmfuse.dask.gram(da.from_array(X, chunks=100), normalize="sideways")


def test_grid_search_on_the_cluster_equals_local(client, mfeat_small):
    X, y, views = mfeat_small
    grid = {"p": [1.0, 2.0], "C": [1.0, 10.0]}
    est = MKLClassifier(views=views, threads=1)
    local = GridSearchCV(est, grid, cv=3).fit(X, y)
    with joblib.parallel_backend("dask"):
        remote = GridSearchCV(est, grid, cv=3, n_jobs=-1).fit(X, y)
    assert remote.best_params_ == local.best_params_
    assert np.array_equal(remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
    assert np.array_equal(remote.predict(X), local.predict(X))
