"""Dask: Gram matrices of row-chunked ``dask.array`` data, tile by tile on the workers.

Model selection on a cluster needs nothing from this module: the estimators are picklable, so
``GridSearchCV`` runs on a Dask cluster under ``joblib.parallel_backend("dask")``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _native
from . import gram as _gram
from ._inputs import kernel_spec

__all__ = ["gram"]


def _tile(xi: np.ndarray, xj: Optional[np.ndarray], spec: str, dtype: Any, threads: Optional[int]) -> np.ndarray:
    """One tile on a worker: K(X_i, X_i) (exactly symmetric) or K(X_i, X_j)."""
    return _gram(xi, xj, kernel=spec, dtype=dtype, threads=threads)


def gram(
    X: Any,
    kernel: str = "rbf",
    gamma: Optional[float] = None,
    degree: int = 3,
    coef0: float = 1,
    normalize: Optional[str] = None,
    dtype: Any = None,
    threads: Optional[int] = 1,
):
    """K(X, X) of a ``dask.array`` chunked by rows, as a ``dask.array`` of kernel tiles.

    Tile (i, j) for i <= j is one task computing ``mmfuse.gram`` of row chunks i and j (the
    Rust kernel, on whichever worker holds them); each tile below the diagonal is the
    transpose of its mirror, so every pair of chunks is computed once and the result is exactly
    symmetric. Columns are merged into one chunk first.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Data, chunked by rows (any numeric dtype; float32 stays float32).
    kernel, gamma, degree, coef0
        As :func:`mmfuse.gram`; gamma defaults to 1 / n_features of the whole X.
    normalize : {None, "none", "trace", "unit-diag", "center"}, optional
        Applied with the statistics of the whole matrix (its trace, diagonal or means), as
        ``mmfuse.gram`` does, by Dask array operations on the tiles.
    dtype : {None, numpy.float32, numpy.float64}, optional
        Element type (default: X's when float32/float64, else float64).
    threads : int, optional, default=1
        Threads per tile task (1: one task per worker thread does the parallelism).

    Returns
    -------
    K : dask.array.Array of shape (n_samples, n_samples)
        Chunked as X's rows in both dimensions. Entries equal ``mmfuse.gram(X.compute())`` to
        rounding: a tile off the diagonal is a cross kernel K(X_i, X_j), which the engine
        computes with its own blocking (and, for rbf, centring by X_j's means), so entries may
        differ from the single-matrix result in the last bits.

    Examples
    --------
    >>> import dask.array as da, numpy as np, mmfuse.dask
    >>> X = da.from_array(np.random.default_rng(0).normal(size=(1000, 20)), chunks=(250, 20))
    >>> K = mmfuse.dask.gram(X, kernel="rbf")
    >>> K.chunks[0]
    (250, 250, 250, 250)
    """
    import dask
    import dask.array as da

    X = da.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    if dtype is not None:
        dt = np.dtype(dtype)
    elif X.dtype in (np.float32, np.float64):
        dt = np.dtype(X.dtype)
    elif X.dtype.kind in "iub":
        dt = np.dtype(np.float64)
    else:
        raise TypeError(f"X has dtype {X.dtype}; pass a numeric (float32 or float64) array")
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    how = None if normalize is None else str(normalize).strip().lower().replace("_", "-")
    if how not in (None, "none", "trace", "unit-diag", "unitdiag", "center", "centre"):
        raise ValueError(
            f"invalid parameter `normalize`: unknown normalisation `{normalize}` "
            "(none, trace, unit-diag, center)"
        )
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    X = X.astype(dt)
    # gamma = 1/d for the whole matrix, fixed before the tiles are cut.
    spec = _native.resolve_kernel(kernel_spec(kernel, gamma, degree, coef0), int(X.shape[1]))
    parts = X.to_delayed().ravel()
    sizes = X.chunks[0]
    nb = len(sizes)
    token = dask.base.tokenize(X, spec, dt.str, threads)
    tile = dask.delayed(_tile, pure=True)
    grid: list = [[None] * nb for _ in range(nb)]
    for i in range(nb):
        for j in range(i, nb):
            task = tile(
                parts[i],
                None if i == j else parts[j],
                spec,
                dt,
                threads,
                dask_key_name=f"mmfuse-gram-tile-{token}-{i}-{j}",
            )
            t = da.from_delayed(task, shape=(sizes[i], sizes[j]), dtype=dt)
            grid[i][j] = t
            if i != j:
                grid[j][i] = t.T
    K = da.block(grid)
    if how in (None, "none"):
        return K
    n = K.shape[0]
    if how == "trace":
        tr = da.diagonal(K).astype(np.float64).sum()
        return (K * (1.0 / (tr / n))).astype(dt)
    if how in ("unit-diag", "unitdiag"):
        d = da.diagonal(K).astype(np.float64)
        prod = d[:, None] * d[None, :]
        safe = da.where(prod > 0, prod, 1.0)
        return da.where(prod > 0, K / da.sqrt(safe), 0.0).astype(dt)
    col = K.astype(np.float64).mean(axis=0)
    grand = col.mean()
    # K is symmetric: its row means are its column means.
    return (K - col[None, :] - col[:, None] + grand).astype(dt)
