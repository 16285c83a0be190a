"""mmfuse.datasets.load_mfeat: the library's embedded data."""

import numpy as np

from mmfuse.datasets import load_mfeat


def test_mfeat_shapes_and_slices():
    d = load_mfeat()
    dims = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
    assert list(d.views) == list(dims)
    assert d.data.shape == (2000, sum(dims.values())) and d.data.dtype == np.float64
    for name, x in d.views.items():
        assert x.shape == (2000, dims[name])
        assert np.array_equal(d.data[:, d.view_slices[name]], x)
    assert np.array_equal(np.bincount(d.target), np.full(10, 200))
