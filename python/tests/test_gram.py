"""mmfuse.gram: values, layouts, dtypes, bad input, the GIL released."""

import threading
import time

import numpy as np
import pytest

import mmfuse


def naive_rbf(X, Y, gamma):
    d = ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1)
    return np.exp(-gamma * d)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(130, 7)), rng.normal(size=(40, 7))


def test_rbf_matches_a_naive_loop(data):
    X, Y = data
    K = mmfuse.gram(X, kernel="rbf", gamma=0.3)
    np.testing.assert_allclose(K, naive_rbf(X, X, 0.3), rtol=1e-12, atol=1e-14)
    assert np.array_equal(K, K.T) and np.all(np.diag(K) == 1.0)
    Kxy = mmfuse.gram(Y, X, kernel="rbf")  # gamma = 1/d
    np.testing.assert_allclose(Kxy, naive_rbf(Y, X, 1 / 7), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "kernel,kw,ref",
    [
        ("linear", {}, lambda X: X @ X.T),
        ("poly", {"degree": 2, "coef0": 0.5, "gamma": 0.2}, lambda X: (0.2 * X @ X.T + 0.5) ** 2),
        ("sigmoid", {"gamma": 0.1}, lambda X: np.tanh(0.1 * X @ X.T + 1)),
        ("laplacian", {"gamma": 0.5}, lambda X: np.exp(-0.5 * np.abs(X[:, None] - X[None]).sum(-1))),
    ],
)
def test_other_kernels(data, kernel, kw, ref):
    X, _ = data
    np.testing.assert_allclose(mmfuse.gram(X, kernel=kernel, **kw), ref(X), rtol=1e-11, atol=1e-12)


def test_full_spec_equals_arguments(data):
    X, _ = data
    a = mmfuse.gram(X, kernel="poly:degree=2,coef0=0")
    b = mmfuse.gram(X, kernel="poly", degree=2, coef0=0)
    assert np.array_equal(a, b)


def test_layouts_and_dtypes(data):
    X, Y = data
    K = mmfuse.gram(X)
    assert np.array_equal(mmfuse.gram(np.asfortranarray(X)), K)
    assert np.array_equal(mmfuse.gram(X[::2]), mmfuse.gram(np.ascontiguousarray(X[::2])))
    K32 = mmfuse.gram(X.astype(np.float32))
    assert K32.dtype == np.float32
    np.testing.assert_allclose(K32, K, atol=2e-6)
    assert mmfuse.gram(X, dtype=np.float32).dtype == np.float32
    assert mmfuse.gram((X * 10).astype(np.int64)).dtype == np.float64
    assert mmfuse.gram(np.asfortranarray(Y), X).shape == (40, 130)


def test_result_is_a_fresh_owned_array(data):
    X, _ = data
    K = mmfuse.gram(X)
    assert K.flags.c_contiguous and K.flags.writeable
    K[0, 0] = 5.0  # the buffer is owned by NumPy (moved out of Rust, not a view)


@pytest.mark.parametrize("how", ["trace", "unit-diag", "center"])
def test_normalisations(data, how):
    X, Y = data
    K = mmfuse.gram(X, kernel="linear")
    n = len(X)
    if how == "trace":
        ref = K / (np.trace(K) / n)
    elif how == "unit-diag":
        d = np.diag(K)
        ref = K / np.sqrt(np.outer(d, d))
    else:
        H = np.eye(n) - 1 / n
        ref = H @ K @ H
    np.testing.assert_allclose(mmfuse.gram(X, kernel="linear", normalize=how), ref, rtol=1e-10, atol=1e-10)
    # cross: the statistics of K(Y, Y) = the training kernel
    Kc = mmfuse.gram(Y, X, kernel="linear", normalize=how)
    assert Kc.shape == (40, 130)


def test_bad_input_is_a_python_error(data):
    X, _ = data
    with pytest.raises(TypeError, match="object"):
        mmfuse.gram(np.array([[1, "a"], [2, 3]], dtype=object))
    with pytest.raises(TypeError, match="object"):
        mmfuse.gram([[2**70, 1], [1, 2]])  # too large for int64: NumPy makes an object array
    with pytest.raises(TypeError, match="complex"):
        mmfuse.gram(X + 1j)
    with pytest.raises(TypeError):
        mmfuse.gram(np.array([["a", "b"]]))
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"non-finite value \(NaN\) in X at row 3, column 4"):
        mmfuse.gram(bad)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        mmfuse.gram(bad.astype(np.float32))
    with pytest.raises(ValueError, match="unknown kernel"):
        mmfuse.gram(X, kernel="gaussian-ish")
    with pytest.raises(ValueError, match="gamma"):
        mmfuse.gram(X, gamma=-1.0)
    with pytest.raises(ValueError, match="takes no gamma"):
        mmfuse.gram(X, kernel="linear", gamma=1.0)
    with pytest.raises(ValueError, match="shape mismatch"):
        mmfuse.gram(X, X[:, :3])
    with pytest.raises(ValueError, match="empty"):
        mmfuse.gram(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="2-D"):
        mmfuse.gram(np.zeros(3))
    with pytest.raises(ValueError, match="normalis"):
        mmfuse.gram(X, normalize="sideways")
    with pytest.raises(ValueError, match="threads"):
        mmfuse.gram(X, threads=0)


def test_a_panic_never_crosses_into_python():
    with pytest.raises(RuntimeError, match="Rust panic, caught"):
        mmfuse._native.panic_for_tests()
    # the module still works afterwards
    assert mmfuse.gram(np.eye(2)).shape == (2, 2)


def test_two_python_threads_run_in_parallel():
    """The GIL is released while Rust computes: while one thread is inside a long native call,
    another thread completes native calls of its own. (With the GIL held for the call, the
    second thread could run nothing between the first call's start and end.) The long call
    uses the 1-thread pool and the short ones the default pool: calls asking for the same
    thread count share that pool's workers."""
    rng = np.random.default_rng(0)
    big = rng.normal(size=(4000, 300)).astype(np.float32)
    small = rng.normal(size=(200, 20))
    mmfuse.gram(small)
    span = {}

    def long_call():
        t0 = time.perf_counter()
        mmfuse.gram(big, threads=1)
        mmfuse.gram(big, threads=1)
        span["a"] = (t0, time.perf_counter())

    t = threading.Thread(target=long_call)
    t.start()
    done = []
    while t.is_alive():
        mmfuse.gram(small)
        done.append(time.perf_counter())
    t.join()
    a0, a1 = span["a"]
    assert a1 - a0 > 0.2, "the long call was too short for the test to mean anything"
    inside = [x for x in done if a0 + 0.05 < x < a1 - 0.05]
    assert len(inside) >= 3, (a1 - a0, len(done), len(inside))
