"""scikit-learn estimators for p-norm multiple kernel learning (the Rust ``MklModel``)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _native
from ._inputs import block_spec, expand_kernels, p_string, resolve_views, take

__all__ = ["MKLClassifier", "MKLRegressor"]

_COMMON_PARAMS = """
    views : dict of str -> slice or list of int, optional
        Modalities as column groups of the 2-D ``X``, e.g.
        ``{"visual": slice(0, 128), "audio": slice(128, 192)}``. Default: one view ``"x"`` of
        all columns.
    kernels : str, list or dict, default="rbf"
        Kernel spec (as ``mmfuse.gram``: ``"rbf"``, ``"rbf:gamma=0.1"``,
        ``"poly:degree=2"``, ...; gamma defaults to 1 / d of the view): one for every view, a
        dict view -> spec, or a list with one entry per view. An entry may be a list of specs
        for several kernels on one view; they become the modalities ``view[0]``, ``view[1]``...
    interactions : str or list of tuple of str, default="none"
        Interaction blocks besides one block per modality: ``"none"``, ``"pairs"``, ``"all"``,
        ``"a*b,a*b*c"`` or ``[("a", "b"), ...]``. A block's kernel is the product of its
        modalities' centred kernels, trace-normalised.
    p : float or str, default=2.0
        Norm of the weight constraint, >= 1 (``"4/3"`` and ``"inf"`` are accepted).
    C : float, default=1.0
        Cost of the loss, > 0.
    eps : float, default=1e-4
        Stop when the relative duality gap is at most ``eps``.
    tol : float, default=1e-3
        Initial tolerance of the fixed-weight solver (tightened when the gap needs it).
    max_iter : int, default=200
        Maximum number of outer (weight) iterations.
    normalize : {None, "none", "trace", "unit-diag", "center"}, optional
        Normalisation of the modality kernels: default ``"trace"`` without interactions; with
        interactions the blocks normalise themselves and only None/"none" is allowed.
    allow_indefinite : bool, default=False
        Fit even if a kernel is clearly not positive semi-definite.
    solver : {"auto", "dense", "rows"}, default="auto"
        ``"dense"`` builds every n x n kernel (exact f64, fastest while they fit in memory);
        ``"rows"`` never does: kernel rows are computed on demand from the data into an LRU
        cache of ``cache`` bytes, with libsvm's shrinking (classification only, f32 rows; the
        model keeps only the support vectors' rows unless the kernels are centred).
        ``"auto"`` picks ``"rows"`` for a classifier when ``cache`` is given or the dense
        kernels would take more than a quarter of the memory cap.
    cache : int, optional
        Byte budget of the row cache of ``solver="rows"`` (default: a quarter of the memory
        cap); it must hold two kernel rows (8 n bytes).
    threads : int, optional
        Worker threads (default: all cores).
"""

_COMMON_ATTRS = """
    beta_ : ndarray of shape (n_fits, n_blocks)
        Kernel weights, ||beta||_p = 1, one row per binary problem (one for two classes or
        regression, one per class for one-vs-rest).
    relevance_ : dict of str -> float
        Weight share of each block, averaged over the fits (sums to 1).
    blocks_ : list of str
        What the weights are for: modalities and interaction blocks (``"a*b"``).
    n_support_ : ndarray of shape (n_fits,)
        Non-zero coefficients per fit.
    dual_gap_ : ndarray of shape (n_fits,)
        Relative duality gap (P - D) / |P| per fit.
    converged_ : ndarray of bool of shape (n_fits,)
        Whether each fit reached ``eps``.
    n_iter_ : ndarray of shape (n_fits,)
        Outer iterations per fit.
    kernels_ : dict of str -> str
        The resolved kernel of each modality (gamma filled in).
    n_features_in_ : int
        Number of columns of X.
"""


class _MKLBase(BaseEstimator):
    def __init__(
        self,
        views: Optional[Mapping[str, Any]] = None,
        kernels: Any = "rbf",
        interactions: Any = "none",
        p: Any = 2.0,
        C: float = 1.0,
        eps: float = 1e-4,
        tol: float = 1e-3,
        max_iter: int = 200,
        normalize: Optional[str] = None,
        allow_indefinite: bool = False,
        solver: str = "auto",
        cache: Optional[int] = None,
        threads: Optional[int] = None,
    ) -> None:
        self.views = views
        self.kernels = kernels
        self.interactions = interactions
        self.p = p
        self.C = C
        self.eps = eps
        self.tol = tol
        self.max_iter = max_iter
        self.normalize = normalize
        self.allow_indefinite = allow_indefinite
        self.solver = solver
        self.cache = cache
        self.threads = threads

    def _modalities(self, n_features: int) -> List[Any]:
        return expand_kernels(resolve_views(self.views, n_features), self.kernels)

    def _fit_native(self, X: np.ndarray, y: np.ndarray, classify: bool) -> None:
        if isinstance(self.C, bool) or not isinstance(self.C, (int, float, np.number)):
            raise TypeError(f"C must be a number > 0, got {self.C!r}")
        if isinstance(self.max_iter, bool) or int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise ValueError(f"invalid parameter `max_iter`: must be an integer >= 1, got {self.max_iter!r}")
        modalities = self._modalities(X.shape[1])
        data = [(name, take(X, cols, np.float64), spec) for name, cols, spec in modalities]
        model = _native.mkl_fit(
            data,
            np.ascontiguousarray(y, dtype=np.float64),
            classify,
            interactions=block_spec(self.interactions),
            normalize=self.normalize,
            p=p_string(self.p),
            c=float(self.C),
            eps=float(self.eps),
            tol=float(self.tol),
            max_iter=int(self.max_iter),
            allow_indefinite=bool(self.allow_indefinite),
            threads=self.threads,
            solver=str(self.solver),
            cache=None if self.cache is None else int(self.cache),
        )
        s = model.summary()
        self._model = model
        self._columns = [(name, cols) for name, cols, _ in modalities]
        self.blocks_ = list(s["blocks"])
        self.relevance_ = {name: float(share) for name, share in s["relevance"]}
        self.beta_ = np.asarray(s["beta"], dtype=np.float64)
        self.n_support_ = np.asarray(s["n_support"], dtype=np.int64)
        self.dual_gap_ = np.asarray(s["gap"], dtype=np.float64)
        self.converged_ = np.asarray(s["converged"], dtype=bool)
        self.n_iter_ = np.asarray(s["iterations"], dtype=np.int64)
        self.kernels_ = dict(zip(s["modalities"], s["kernels"]))

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "_model")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        views = [(name, take(X, cols, np.float64)) for name, cols in self._columns]
        return self._model.decision_function(views, threads=self.threads)

    @property
    def model_bytes_(self) -> bytes:
        """The fitted model in the library's binary format (``mmfuse mkl predict --model``)."""
        check_is_fitted(self, "_model")
        return self._model.to_bytes()

    def save(self, path: str) -> None:
        """Writes the fitted model as the library's model file (``MklModel::save``), readable
        by ``mmfuse mkl predict --model``."""
        check_is_fitted(self, "_model")
        self._model.save(str(path))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.non_deterministic = False
        return tags


class MKLClassifier(ClassifierMixin, _MKLBase):
    __doc__ = (
        """p-norm multiple kernel learning classifier (an SVM with learnt kernel weights).

    Each modality (a group of columns of X, possibly with several kernels) gets a kernel; lp-MKL
    learns one weight per modality and per interaction block together with the SVM, certified
    by the duality gap. More than two classes: one-vs-rest (one weight vector per class).

    Parameters
    ----------"""
        + _COMMON_PARAMS
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels."""
        + _COMMON_ATTRS
        + """
    Examples
    --------
    >>> from mmfuse import MKLClassifier
    >>> from mmfuse.datasets import load_mfeat
    >>> d = load_mfeat()
    >>> views = {k: d.view_slices[k] for k in ("kar", "mor")}
    >>> clf = MKLClassifier(views=views, interactions="pairs", p=1).fit(d.data[:300], d.target[:300])
    >>> sorted(clf.relevance_)
    ['kar', 'kar*mor', 'mor']
    """
    )

    def fit(self, X: Any, y: Any) -> "MKLClassifier":
        """Fits the kernel weights and the classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels (any values; two or more classes).

        Returns
        -------
        self : MKLClassifier
        """
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self._fit_native(X, codes.astype(np.float64), classify=True)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values: shape (n_samples,) for two classes (positive: ``classes_[1]``),
        (n_samples, n_classes) for more (one-vs-rest)."""
        s = self._scores(X)
        return s[:, 0] if len(self.classes_) == 2 else s

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels: the sign for two classes (0 counts as ``classes_[1]``, as the
        library), the largest decision value (the first on ties) for more."""
        s = self._scores(X)
        if len(self.classes_) == 2:
            return self.classes_[(s[:, 0] >= 0).astype(np.intp)]
        return self.classes_[np.argmax(s, axis=1)]


class MKLRegressor(RegressorMixin, _MKLBase):
    __doc__ = (
        """p-norm multiple kernel learning regressor (kernel ridge regression with learnt
    kernel weights; squared loss).

    Parameters
    ----------"""
        + _COMMON_PARAMS
        + """
    Attributes
    ----------"""
        + _COMMON_ATTRS
    )

    def fit(self, X: Any, y: Any) -> "MKLRegressor":
        """Fits the kernel weights and the regressor.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Real targets.

        Returns
        -------
        self : MKLRegressor
        """
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2)
        self._fit_native(X, np.asarray(y, dtype=np.float64), classify=False)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, shape (n_samples,)."""
        return self._scores(X)[:, 0]
