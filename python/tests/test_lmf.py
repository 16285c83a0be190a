"""LowRankFusion: relevance, agreement with the library (CLI), files, pickling."""

import pickle
import subprocess

import numpy as np
import pytest

from mmfuse import LowRankFusion


@pytest.fixture(scope="module")
def planted():
    """y = v0 * a0 + noise on three modalities: the pair v*a carries the signal."""
    rng = np.random.default_rng(7)
    n = 600
    X = rng.uniform(-1, 1, size=(n, 9)).astype(np.float64)
    y = X[:, 0] * X[:, 4] + 0.05 * rng.normal(size=n)
    views = {"v": slice(0, 4), "a": slice(4, 7), "t": slice(7, 9)}
    return X, y, views


def test_planted_pair_is_most_relevant(planted):
    X, y, views = planted
    m = LowRankFusion(views=views, rank=4, epochs=40, lr=1e-2, random_state=3).fit(X, y)
    assert m.blocks_ == ["v", "a", "t", "v*a", "v*t", "a*t"]
    assert max(m.relevance_, key=m.relevance_.get) == "v*a"
    assert len(m.history_["train_loss"]) == 40
    assert m.history_["train_loss"][-1] < m.history_["train_loss"][0]
    assert m.score(X, y) > 0.8


def test_classifier(planted):
    X, y, views = planted
    labels = np.where(y > 0, "pos", "neg")
    m = LowRankFusion(views=views, loss="xent", epochs=30, random_state=0).fit(X, labels)
    assert list(m.classes_) == ["neg", "pos"]
    assert m.decision_function(X).shape == (len(X),)
    assert m.score(X, labels) > 0.8


def test_save_load_and_pickle(planted, tmp_path):
    X, y, views = planted
    m = LowRankFusion(views=views, epochs=3, random_state=1).fit(X, y)
    path = tmp_path / "block.safetensors"
    m.save(path)
    back = LowRankFusion.load(path, views=views)
    assert np.array_equal(back.predict(X), m.predict(X))
    assert back.relevance_ == m.relevance_
    again = pickle.loads(pickle.dumps(m))
    assert np.array_equal(again.predict(X), m.predict(X))
    assert again.history_ == m.history_


def test_equals_the_cli(planted, cli, tmp_path):
    """Same seed, same options: the weights file is the CLI's, byte for byte, and so are the
    outputs of `mmfuse lmf forward`."""
    X, y, views = planted
    X32 = X.astype(np.float32)
    args = [cli, "lmf", "train", "--quiet", "--blocks", "pairs", "--rank", "3", "--epochs", "4",
            "--batch", "32", "--lr", "0.01", "--relevance-p", "1", "--reg", "0.001", "--seed", "11"]
    fwd = [cli, "lmf", "forward"]
    for name, sl in views.items():
        np.save(tmp_path / f"{name}.npy", np.ascontiguousarray(X32[:, sl]))
        args += ["--input", f"{name}={tmp_path / name}.npy"]
        fwd += ["--input", f"{name}={tmp_path / name}.npy"]
    np.save(tmp_path / "y.npy", y.astype(np.float32).reshape(-1, 1))
    subprocess.run(args + ["--target", str(tmp_path / "y.npy"), "--save", str(tmp_path / "cli.safetensors")], check=True)
    subprocess.run(fwd + ["--weights", str(tmp_path / "cli.safetensors"), "--out", str(tmp_path / "out.npy")], check=True)
    m = LowRankFusion(views=views, rank=3, epochs=4, batch_size=32, lr=0.01, p=1, reg=1e-3, random_state=11).fit(X32, y)
    m.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == (tmp_path / "cli.safetensors").read_bytes()
    cli_out = np.load(tmp_path / "out.npy").ravel()
    assert np.array_equal(m.predict(X32).astype(np.float32), cli_out)


def test_bad_input(planted):
    X, y, views = planted
    with pytest.raises(ValueError, match="rank"):
        LowRankFusion(rank=0).fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        LowRankFusion(loss="hinge").fit(X, y)
    with pytest.raises(ValueError, match="contains `\\*` or `.`"):
        LowRankFusion(views={"a.b": slice(0, 3)}).fit(X, y)
    with pytest.raises(ValueError, match="lr"):
        LowRankFusion(lr=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="does not select columns"):
        LowRankFusion(views={"v": slice(5, 50)}).fit(X, y)


def test_plain_lmf_equals_the_cli(planted, cli, tmp_path):
    """blocks="none" is the plain LMF of `mmfuse lmf train --blocks none`: the same weights
    file (PyTorch layout), byte for byte, and the same outputs."""
    X, y, views = planted
    X32 = X.astype(np.float32)
    args = [cli, "lmf", "train", "--quiet", "--rank", "3", "--epochs", "3", "--batch", "16",
            "--lr", "0.005", "--seed", "5"]
    fwd = [cli, "lmf", "forward"]
    for name, sl in views.items():
        np.save(tmp_path / f"{name}.npy", np.ascontiguousarray(X32[:, sl]))
        args += ["--input", f"{name}={tmp_path / name}.npy"]
        fwd += ["--input", f"{name}={tmp_path / name}.npy"]
    np.save(tmp_path / "y.npy", y.astype(np.float32).reshape(-1, 1))
    subprocess.run(args + ["--target", str(tmp_path / "y.npy"), "--save", str(tmp_path / "cli.safetensors")], check=True)
    subprocess.run(fwd + ["--weights", str(tmp_path / "cli.safetensors"), "--out", str(tmp_path / "out.npy")], check=True)
    m = LowRankFusion(views=views, blocks="none", rank=3, epochs=3, batch_size=16, lr=0.005, random_state=5).fit(X32, y)
    assert m.relevance_ is None and len(m.history_["train_loss"]) == 3
    m.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == (tmp_path / "cli.safetensors").read_bytes()
    assert np.array_equal(m.predict(X32).astype(np.float32), np.load(tmp_path / "out.npy").ravel())
    back = LowRankFusion.load(tmp_path / "cli.safetensors", views=views)
    assert np.array_equal(back.predict(X32), m.predict(X32))
    assert np.array_equal(pickle.loads(pickle.dumps(m)).predict(X32), m.predict(X32))


def test_pytorch_state_dict_fixture():
    """The committed PyTorch fixture (scripts/make_lmf_fixture.py: a state_dict saved by
    safetensors.torch.save_file, no order metadata) loads with the views' order and gives
    PyTorch's outputs to float32 rounding (2 ulps of the largest output; measured 1.2e-7
    relative)."""
    from conftest import REPO

    fx = REPO / "tests" / "fixtures"
    xs = [np.load(fx / f"lmf_{n}.npy") for n in ("visual", "audio", "text")]
    views = {"visual": slice(0, 5), "audio": slice(5, 8), "text": slice(8, 12)}
    m = LowRankFusion.load(fx / "lmf_torch.safetensors", views=views)
    out = m.predict(np.hstack(xs))
    ref = np.load(fx / "lmf_output.npy")
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 2.5e-7 * np.abs(ref).max()
