"""Input conversion shared by the functions and estimators: float arrays, kernel specs, views."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# The parameters each kernel takes (the Rust spec parser refuses the others).
_TAKES = {
    "linear": (),
    "cosine": (),
    "rbf": ("gamma",),
    "gaussian": ("gamma",),
    "laplacian": ("gamma",),
    "poly": ("gamma", "degree", "coef0"),
    "polynomial": ("gamma", "degree", "coef0"),
    "sigmoid": ("gamma", "coef0"),
}

ViewSpec = Union[slice, range, Sequence[int], np.ndarray]


def as_float_matrix(x: Any, what: str, dtype: Any = None) -> np.ndarray:
    """``x`` as a 2-D float32/float64 array that Rust can borrow (no copy when it already is one).

    Object, complex, string and other non-numeric dtypes raise ``TypeError``; integer and bool
    arrays are converted to float64 (or ``dtype``).
    """
    a = np.asarray(x)
    kind = a.dtype.kind
    if kind == "O":
        raise TypeError(
            f"{what} has dtype object (mixed types, or integers too large for int64); "
            "pass a numeric array"
        )
    if kind == "c":
        raise TypeError(f"{what} is complex ({a.dtype}); only real float32/float64 data are supported")
    if kind not in "fiub":
        raise TypeError(f"{what} has dtype {a.dtype}; pass a numeric (float32 or float64) array")
    if a.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_samples, n_features), got shape {a.shape}")
    if dtype is not None:
        target = np.dtype(dtype)
        if target not in _FLOATS:
            raise TypeError(f"dtype must be float32 or float64, got {target}")
    else:
        target = a.dtype if a.dtype in _FLOATS else np.dtype(np.float64)
    if a.dtype != target or not a.dtype.isnative:
        a = a.astype(target.newbyteorder("="))
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        a = np.ascontiguousarray(a)
    if not a.flags.aligned:
        # e.g. arrays unpickled from out-of-band buffers (Dask workers): one aligned copy
        a = a.copy(order="K")
    return a


def kernel_spec(kernel: str, gamma: Optional[float] = None, degree: int = 3, coef0: float = 1.0) -> str:
    """The library's kernel spec string for a kernel name and its parameters.

    A full spec (``"poly:degree=2"``) is used as it is, and then ``gamma`` must be None;
    parameters a kernel does not take are ignored when they are left at their defaults.
    Unknown names are passed on so that the library's error message names them.
    """
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be a string such as 'rbf' or 'rbf:gamma=0.1', got {kernel!r}")
    if ":" in kernel:
        if gamma is not None:
            raise ValueError(f"kernel {kernel!r} is a full spec; give gamma inside it, not as well")
        return kernel
    name = kernel.strip().lower()
    takes = _TAKES.get(name)
    if takes is None:
        return kernel
    parts = []
    if gamma is not None:
        if "gamma" not in takes:
            raise ValueError(f"the {name} kernel takes no gamma")
        parts.append(f"gamma={float(gamma)!r}")
    if "degree" in takes:
        if isinstance(degree, bool) or int(degree) != degree:
            raise ValueError(f"degree must be a non-negative integer, got {degree!r}")
        parts.append(f"degree={int(degree)}")
    if "coef0" in takes:
        parts.append(f"coef0={float(coef0)!r}")
    return name + (":" + ",".join(parts) if parts else "")


def p_string(p: Any) -> str:
    """p as the library's parser reads it (a number, a fraction string such as '4/3', 'inf')."""
    if isinstance(p, str):
        return p
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"p must be a number >= 1, 'inf' or a fraction such as '4/3', got {p!r}")
    return repr(float(p))


def view_columns(name: str, spec: ViewSpec, n_features: int) -> np.ndarray:
    """The column indices a view selects, checked against the number of features."""
    if isinstance(spec, slice):
        if spec.step not in (None, 1):
            cols = np.arange(n_features)[spec]
        else:
            start = 0 if spec.start is None else spec.start
            stop = n_features if spec.stop is None else spec.stop
            if not (0 <= start < stop) or stop > n_features:
                raise ValueError(
                    f"view {name!r}: slice({spec.start}, {spec.stop}) does not select columns of "
                    f"X, which has {n_features} features"
                )
            cols = np.arange(start, stop)
    else:
        cols = np.asarray(list(spec) if isinstance(spec, range) else spec)
        if cols.dtype.kind not in "iu" or cols.ndim != 1:
            raise ValueError(f"view {name!r}: expected a slice or a list of column indices, got {spec!r}")
        if cols.size and (cols.min() < 0 or cols.max() >= n_features):
            raise ValueError(
                f"view {name!r}: column indices must be in 0..{n_features - 1} "
                f"(X has {n_features} features), got {cols.min()}..{cols.max()}"
            )
        if np.unique(cols).size != cols.size:
            raise ValueError(f"view {name!r}: a column is listed twice")
    if cols.size == 0:
        raise ValueError(f"view {name!r} selects no columns")
    return cols.astype(np.intp)


def resolve_views(views: Optional[Mapping[str, ViewSpec]], n_features: int) -> List[Tuple[str, np.ndarray]]:
    """``views`` (name -> columns) as a list of (name, column indices); None is one view 'x'."""
    if views is None:
        return [("x", np.arange(n_features, dtype=np.intp))]
    if not isinstance(views, Mapping) or len(views) == 0:
        raise ValueError("views must be a non-empty dict: name -> slice or list of column indices")
    out = []
    for name, spec in views.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"view names must be non-empty strings, got {name!r}")
        out.append((name, view_columns(name, spec, n_features)))
    return out


def take(X: np.ndarray, cols: np.ndarray, dtype: Any) -> np.ndarray:
    """The columns ``cols`` of X as a C-contiguous array (a slice of consecutive columns of a
    C-ordered X costs one copy, as any column selection)."""
    if cols.size == X.shape[1] and np.array_equal(cols, np.arange(X.shape[1])):
        sub = X
    elif cols.size and np.array_equal(cols, np.arange(cols[0], cols[0] + cols.size)):
        sub = X[:, cols[0] : cols[0] + cols.size]
    else:
        sub = X[:, cols]
    out = np.ascontiguousarray(sub, dtype=dtype)
    return out if out.flags.aligned else out.copy()


def expand_kernels(
    views: List[Tuple[str, np.ndarray]], kernels: Any
) -> List[Tuple[str, np.ndarray, str]]:
    """Modalities as (name, columns, kernel spec): one per view and kernel.

    ``kernels`` is one spec for every view, a dict view -> spec (or list of specs), or a list
    with one entry (spec or list of specs) per view. A view with several kernels gives the
    modalities ``view[0]``, ``view[1]``, ...
    """
    names = [n for n, _ in views]
    if isinstance(kernels, str):
        per_view: Dict[str, Any] = {n: kernels for n in names}
    elif isinstance(kernels, Mapping):
        unknown = [k for k in kernels if k not in names]
        if unknown:
            raise ValueError(f"kernels names views that do not exist: {unknown} (views: {names})")
        per_view = {n: kernels.get(n, "rbf") for n in names}
    elif isinstance(kernels, (list, tuple)):
        if len(kernels) != len(names):
            raise ValueError(f"kernels has {len(kernels)} entries for {len(names)} views")
        per_view = dict(zip(names, kernels))
    else:
        raise TypeError(f"kernels must be a spec string, a dict or a list, got {kernels!r}")
    out = []
    for name, cols in views:
        spec = per_view[name]
        if isinstance(spec, str):
            out.append((name, cols, spec))
        elif isinstance(spec, (list, tuple)) and spec and all(isinstance(s, str) for s in spec):
            if len(spec) == 1:
                out.append((name, cols, spec[0]))
            else:
                out.extend((f"{name}[{i}]", cols, s) for i, s in enumerate(spec))
        else:
            raise TypeError(f"kernels for view {name!r} must be a spec string or a list of them, got {spec!r}")
    return out


def block_spec(interactions: Any) -> str:
    """``interactions`` as the library's block spec: 'none', 'pairs', 'all', 'a*b,a*b*c', or a
    list of tuples of modality names."""
    if interactions is None:
        return "none"
    if isinstance(interactions, str):
        return interactions
    if isinstance(interactions, (list, tuple)):
        parts = []
        for block in interactions:
            if isinstance(block, str):
                parts.append(block)
            else:
                parts.append("*".join(block))
        return ",".join(parts) if parts else "none"
    raise TypeError(f"interactions must be a string or a list of tuples of names, got {interactions!r}")
