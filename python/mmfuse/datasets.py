"""Bundled data sets."""

from __future__ import annotations

from typing import Dict

import numpy as np
from sklearn.utils import Bunch

from . import _native

__all__ = ["load_mfeat"]


def load_mfeat() -> Bunch:
    """The UCI Multiple Features digits (R. Duin; CC BY 4.0), embedded in the library.

    2,000 samples, 200 of each digit 0-9, in six views: ``fou`` 76, ``fac`` 216, ``kar`` 64,
    ``pix`` 240, ``zer`` 47 and ``mor`` 6 features. Nothing is read from disk or downloaded:
    the data are those of ``mmfuse::datasets::mfeat()`` (``data/mfeat.npz`` in the repository).

    Returns
    -------
    data : sklearn.utils.Bunch
        ``data``: float64 array (2000, 649), the views side by side in the order above;
        ``target``: int64 digits (2000,); ``views``: dict name -> float64 array (2000, d);
        ``view_slices``: dict name -> slice of the columns of ``data`` (ready for the
        ``views`` parameter of the estimators); ``target_names``; ``DESCR``.

    Examples
    --------
    >>> from mmfuse.datasets import load_mfeat
    >>> d = load_mfeat()
    >>> d.data.shape, d.view_slices["kar"]
    ((2000, 649), slice(292, 356, None))
    """
    views, labels = _native.mfeat()
    view_dict: Dict[str, np.ndarray] = {}
    slices: Dict[str, slice] = {}
    start = 0
    for name, x in views:
        view_dict[name] = x
        slices[name] = slice(start, start + x.shape[1])
        start += x.shape[1]
    data = np.hstack([x for _, x in views])
    return Bunch(
        data=data,
        target=labels.astype(np.int64),
        views=view_dict,
        view_slices=slices,
        target_names=np.arange(10),
        DESCR=load_mfeat.__doc__,
    )
