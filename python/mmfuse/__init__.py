"""mmfuse: multimodal fusion on a Rust engine.

Gram matrices (:func:`gram`), p-norm multiple kernel learning over modalities and their
interactions (:class:`MKLClassifier`, :class:`MKLRegressor`), block low-rank multimodal fusion
(:class:`LowRankFusion`), the bundled Multiple Features data (:mod:`mmfuse.datasets`) and Dask
helpers for more than one machine (:mod:`mmfuse.dask`).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _native
from ._inputs import as_float_matrix, kernel_spec

__version__ = "0.1.0"

__all__ = [
    "gram",
    "isa",
    "MKLClassifier",
    "MKLRegressor",
    "LowRankFusion",
    "datasets",
    "__version__",
]


def gram(
    X: Any,
    Y: Any = None,
    kernel: str = "rbf",
    gamma: Optional[float] = None,
    degree: int = 3,
    coef0: float = 1,
    normalize: Optional[str] = None,
    dtype: Any = None,
    threads: Optional[int] = None,
) -> np.ndarray:
    """Kernel (Gram) matrix K(X, X), or K(X, Y), computed by the Rust engine.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data. C- or F-contiguous float32/float64 arrays are borrowed, not copied; other numeric
        arrays are converted (to float64 unless ``dtype`` says otherwise).
    Y : array-like of shape (n_samples_Y, n_features), optional
        Second argument (the training points): the result is K(X, Y), and ``normalize`` uses the
        statistics of K(Y, Y), as ``mmfuse gram --against``.
    kernel : str, default="rbf"
        ``linear``, ``poly``, ``rbf``, ``laplacian``, ``sigmoid``, ``cosine``, or a full spec
        such as ``"rbf:gamma=0.1"`` (then ``gamma`` must be None).
    gamma : float, optional
        Kernel scale; default 1 / n_features (scikit-learn's ``pairwise_kernels`` default).
    degree : int, default=3
        Degree of ``poly``.
    coef0 : float, default=1
        Offset of ``poly`` and ``sigmoid``.
    normalize : {None, "none", "trace", "unit-diag", "center"}, optional
        Normalisation of the result.
    dtype : {None, numpy.float32, numpy.float64}, optional
        Element type of the computation and the result; default: X's when it is float32 or
        float64, else float64.
    threads : int, optional
        Worker threads (default: all cores). Results are bitwise the same for any count.

    Returns
    -------
    K : numpy.ndarray of shape (n_samples, n_samples) or (n_samples, n_samples_Y)
        Exactly symmetric for K(X, X).

    Raises
    ------
    TypeError
        Object, complex or non-numeric arrays.
    ValueError
        NaN or infinite values, empty data, feature counts that differ, unknown kernels or
        invalid parameters (the engine's message).

    Notes
    -----
    The GIL is released while the matrix is computed, so Python threads calling ``gram`` run
    in parallel.

    Examples
    --------
    >>> import numpy as np, mmfuse
    >>> K = mmfuse.gram(np.eye(3), kernel="rbf", gamma=0.5)
    >>> K.shape
    (3, 3)
    """
    Xa = as_float_matrix(X, "X", dtype)
    Ya = None if Y is None else as_float_matrix(Y, "Y", Xa.dtype)
    spec = kernel_spec(kernel, gamma, degree, coef0)
    return _native.gram(Xa, Ya, spec, normalize, threads)


def isa() -> str:
    """The instruction set of the engine's kernels on this machine: ``"v4"`` (AVX-512),
    ``"v3"`` (AVX2 + FMA) or ``"scalar"`` (``MMFUSE_ISA`` may ask for a lower one)."""
    return _native.isa()


from ._mkl import MKLClassifier, MKLRegressor  # noqa: E402
from ._lmf import LowRankFusion  # noqa: E402
from . import datasets  # noqa: E402
