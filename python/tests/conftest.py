"""Shared fixtures: small slices of the bundled Multiple Features data, the CLI binary."""

import os
import pathlib
import shutil

import numpy as np
import pytest

from mmfuse.datasets import load_mfeat

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mfeat():
    return load_mfeat()


@pytest.fixture(scope="session")
def mfeat_small(mfeat):
    """300 rows (30 per digit, seeded), the views kar, mor and zer."""
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(mfeat.target == c), 30, replace=False) for c in range(10)])
    rng.shuffle(idx)
    views = {k: mfeat.view_slices[k] for k in ("kar", "mor", "zer")}
    return mfeat.data[idx], mfeat.target[idx], views


@pytest.fixture(scope="session")
def cli():
    """The `mmfuse` binary of this checkout (MMFUSE_CLI, else target/release/mmfuse, else on
    PATH). `.ci/run` builds it before pytest runs, so these tests do not skip in CI."""
    for cand in (os.environ.get("MMFUSE_CLI"), REPO / "target" / "release" / "mmfuse", shutil.which("mmfuse")):
        if cand and pathlib.Path(cand).is_file():
            return str(cand)
    pytest.skip("the mmfuse CLI is not built (cargo build --release)")
