"""scikit-learn estimator for block low-rank multimodal fusion (the Rust ``BlockLmf``)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._tags import ClassifierTags, RegressorTags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _native
from ._inputs import block_spec, p_string, resolve_views, take

__all__ = ["LowRankFusion"]

_LOSSES = ("mse", "l1", "xent")


class LowRankFusion(BaseEstimator):
    """Block low-rank multimodal fusion: one low-rank tensor per block of modalities, with lp
    relevance per block (mmfuse's block LMF, float32).

    y = b + sum_m x~_m W_m + sum_I sum_i w_{I,i} prod_{m in I} (x~_m U_{I,m}[i]), with x~_m the
    standardised modality. Training minimises the loss plus
    ``reg * (sum_I ||W_I||^q)^(2/q)``, q = 2p / (p + 1), so that the blocks that do not matter
    shrink; ``relevance_`` gives each block's share.

    A regressor with ``loss="mse"`` or ``"l1"``; a classifier with ``loss="xent"`` (softmax
    cross-entropy; ``predict`` gives labels, ``score`` the accuracy).

    Parameters
    ----------
    views : dict of str -> slice or list of int, optional
        Modalities as column groups of X; default one view ``"x"`` of all columns. Names must
        not contain ``*`` or ``.``.
    rank : int, default=4
        Rank of each interaction block.
    blocks : str or list of tuple of str, default="pairs"
        Interaction blocks besides the unimodal ones: ``"pairs"``, ``"all"`` or
        ``"a*b,..."`` / ``[("a", "b"), ...]``. ``"none"`` trains the plain LMF model instead
        (as ``mmfuse lmf train --blocks none``: one low-rank tensor over all modalities,
        PyTorch-layout weights files, Adam, MSE or L1; ``p``, ``reg`` and ``momentum`` do not
        apply, and it has no relevance).
    p : float or str, default=1.0
        Relevance exponent, >= 1 (1: a group lasso over blocks).
    reg : float, default=1e-3
        Penalty weight, >= 0.
    loss : {"mse", "l1", "xent"}, default="mse"
        Loss; ``"xent"`` makes the estimator a classifier.
    optimizer : {"adam", "sgd"}, default="adam"
        Optimiser (Adam with PyTorch's defaults, or SGD with ``momentum``).
    momentum : float, default=0.9
        SGD momentum.
    lr : float, default=1e-2
        Learning rate.
    epochs : int, default=50
        Passes over the training rows.
    batch_size : int, default=64
        Rows per mini-batch.
    weight_decay : float, default=0.0
        L2 penalty added to every gradient.
    shuffle : bool, default=True
        Shuffle the rows every epoch.
    validation_fraction : float, default=0.0
        Share of the last rows held out for validation (``history_["val_loss"]``).
    patience : int, optional
        Early stopping after this many epochs without a lower validation loss.
    random_state : int, RandomState or None, default=None
        Seed of the initialisation and the shuffles (an int gives the library's results for
        that seed, as ``mmfuse lmf train --seed``).
    threads : int, optional
        Worker threads (default: all cores).

    Attributes
    ----------
    relevance_ : dict of str -> float or None
        Share of each block (sums to 1); None for plain LMF.
    blocks_ : list of str or None
        Block names; None for plain LMF.
    history_ : dict
        Per epoch ``train_loss``, ``val_loss``, ``penalty``, ``relevance`` (list of shares in
        ``blocks_`` order), and ``best_epoch``, ``stopped_early``, ``steps``.
    classes_ : ndarray
        Class labels (``loss="xent"`` only).
    n_features_in_ : int
        Number of columns of X.
    """

    def __init__(
        self,
        views: Optional[Mapping[str, Any]] = None,
        rank: int = 4,
        blocks: Any = "pairs",
        p: Any = 1.0,
        reg: float = 1e-3,
        loss: str = "mse",
        optimizer: str = "adam",
        momentum: float = 0.9,
        lr: float = 1e-2,
        epochs: int = 50,
        batch_size: int = 64,
        weight_decay: float = 0.0,
        shuffle: bool = True,
        validation_fraction: float = 0.0,
        patience: Optional[int] = None,
        random_state: Any = None,
        threads: Optional[int] = None,
    ) -> None:
        self.views = views
        self.rank = rank
        self.blocks = blocks
        self.p = p
        self.reg = reg
        self.loss = loss
        self.optimizer = optimizer
        self.momentum = momentum
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.shuffle = shuffle
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.threads = threads

    def _is_classifier(self) -> bool:
        return isinstance(self.loss, str) and self.loss.lower() in ("xent", "cross-entropy", "cross_entropy")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        if self._is_classifier():
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        return tags

    def _seed(self) -> int:
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool):
            if self.random_state < 0:
                raise ValueError(f"random_state must be >= 0, got {self.random_state}")
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _inputs(self, X: np.ndarray):
        return [(name, take(X, cols, np.float32)) for name, cols in self._columns]

    def fit(self, X: Any, y: Any) -> "LowRankFusion":
        """Trains the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Targets (regression) or labels (``loss="xent"``).

        Returns
        -------
        self : LowRankFusion
        """
        if not isinstance(self.loss, str) or self.loss.lower() not in _LOSSES + ("cross-entropy", "cross_entropy"):
            raise ValueError(f"invalid parameter `loss`: {self.loss!r} is not one of mse, l1, xent")
        classify = self._is_classifier()
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2, y_numeric=not classify)
        views = resolve_views(self.views, X.shape[1])
        if classify:
            check_classification_targets(y)
            self.classes_, codes = np.unique(y, return_inverse=True)
            targets = codes.astype(np.float32).reshape(-1, 1)
            out_dim = max(2, len(self.classes_))
        else:
            targets = np.asarray(y, dtype=np.float32).reshape(-1, 1)
            out_dim = 1
        seed = self._seed()
        self._columns = views
        if block_spec(self.blocks).strip().lower() in ("none", ""):
            if str(self.optimizer).lower() != "adam":
                raise ValueError(
                    "invalid parameter `optimizer`: plain LMF (blocks='none') trains with Adam; "
                    "sgd is for block models"
                )
            model = _native.plain_lmf_new(
                [(name, int(cols.size)) for name, cols in views], int(self.rank), out_dim, seed
            )
            history = model.train(
                self._inputs(X),
                np.ascontiguousarray(targets),
                epochs=int(self.epochs),
                batch_size=int(self.batch_size),
                lr=float(self.lr),
                loss=self.loss,
                weight_decay=float(self.weight_decay),
                seed=seed,
                shuffle=bool(self.shuffle),
                validation_fraction=float(self.validation_fraction),
                patience=self.patience,
                threads=self.threads,
            )
            self._set_fitted(model, history)
            return self
        model = _native.lmf_new(
            [(name, int(cols.size)) for name, cols in views],
            block_spec(self.blocks),
            int(self.rank),
            out_dim,
            p_string(self.p),
            seed,
        )
        history = model.train(
            self._inputs(X),
            np.ascontiguousarray(targets),
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            loss=self.loss,
            reg=float(self.reg),
            optimizer=str(self.optimizer),
            momentum=float(self.momentum),
            weight_decay=float(self.weight_decay),
            seed=seed,
            shuffle=bool(self.shuffle),
            validation_fraction=float(self.validation_fraction),
            patience=self.patience,
            threads=self.threads,
        )
        self._set_fitted(model, history)
        return self

    def _set_fitted(self, model: Any, history: Optional[Dict[str, Any]]) -> None:
        self._model = model
        self.history_ = history if history is not None else {}
        if isinstance(model, _native.PlainLmf):
            self.blocks_ = None
            self.relevance_ = None
            return
        rel = model.relevance()
        self.blocks_ = list(rel["blocks"])
        self.relevance_ = dict(zip(rel["blocks"], (float(s) for s in rel["shares"])))

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "_model")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return self._model.forward(self._inputs(X), threads=self.threads)

    @available_if(lambda self: self._is_classifier())
    def decision_function(self, X: Any) -> np.ndarray:
        """Classifier only (``loss="xent"``): the logits (n_samples, n_classes), or
        logit[1] - logit[0] (n_samples,) for two classes."""
        y = self._forward(X)
        return y[:, 1] - y[:, 0] if len(self.classes_) == 2 else y

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, or labels (the largest output, the first on ties) for ``xent``."""
        y = self._forward(X)
        if self._is_classifier():
            return self.classes_[np.argmax(y[:, : len(self.classes_)], axis=1)]
        # a loaded file may have several outputs (h columns); a fitted regressor has one
        return (y[:, 0] if y.shape[1] == 1 else y).astype(np.float64)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy (classifier) or R^2 (regressor) of ``predict(X)``."""
        if self._is_classifier():
            return float(accuracy_score(y, self.predict(X), sample_weight=sample_weight))
        return float(r2_score(y, self.predict(X), sample_weight=sample_weight))

    def save(self, path: str) -> None:
        """Writes the weights file (safetensors) of ``mmfuse lmf train --save``: the block
        model file, or for plain LMF the PyTorch reference layout (read by ``mmfuse lmf
        forward`` and by ``safetensors.torch.load_file``)."""
        check_is_fitted(self, "_model")
        self._model.save(str(path))

    @classmethod
    def load(
        cls,
        path: str,
        views: Optional[Mapping[str, Any]] = None,
        loss: Optional[str] = None,
        classes: Any = None,
    ) -> "LowRankFusion":
        """A fitted estimator from a weights file (``save`` or ``mmfuse lmf train``): a block
        model file, or a plain LMF file in the PyTorch reference layout.

        Parameters
        ----------
        path : str
            The safetensors file. A PyTorch ``state_dict`` without mmfuse's modality order
            metadata takes the order of ``views``.
        views : dict, optional
            Columns of X per modality (in the file's modality order); default: consecutive
            column groups of the file's feature counts.
        loss : str, optional
            The loss the model was trained with; default ``"xent"`` (a classifier) for more than
            one output, else ``"mse"``.
        classes : array-like, optional
            Class labels of a classifier saved by the CLI (default ``0..h-1`` when the model
            has more than one output).

        Returns
        -------
        LowRankFusion
            ``history_`` is empty: files hold weights, not histories.
        """
        with open(path, "rb") as f:
            data = f.read()
        if _native.is_block_model(data):
            model = _native.Lmf.from_bytes(data)
        else:
            try:
                model = _native.PlainLmf.from_bytes(data)
            except ValueError:
                if views is None:
                    raise
                model = _native.PlainLmf.from_bytes(data, list(views))
        names, dims = model.modalities, model.dims
        if views is None:
            views, start = {}, 0
            for n, d in zip(names, dims):
                views[n] = slice(start, start + d)
                start += d
        if loss is None:
            plain = isinstance(model, _native.PlainLmf)
            loss = "xent" if model.out_dim > 1 and not plain else "mse"
        if isinstance(model, _native.PlainLmf):
            est = cls(views=dict(views), rank=model.rank, blocks="none", loss=loss)
        else:
            est = cls(
                views=dict(views),
                rank=model.rank,
                blocks=",".join(b for b in model.blocks if "*" in b) or "none",
                p=model.p,
                loss=loss,
            )
        n_features = max(int(c.max()) + 1 for _, c in resolve_views(views, 10**9))
        est._columns = resolve_views(views, n_features)
        if [n for n, _ in est._columns] != list(names):
            raise ValueError(f"views {list(views)} do not match the file's modalities {list(names)}")
        for (n, cols), d in zip(est._columns, dims):
            if cols.size != d:
                raise ValueError(f"view {n!r} has {cols.size} columns, the file's modality {d}")
        est.n_features_in_ = n_features
        if est._is_classifier():
            est.classes_ = np.arange(model.out_dim) if classes is None else np.asarray(classes)
        est._set_fitted(model, None)
        return est
