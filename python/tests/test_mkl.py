"""MKLClassifier / MKLRegressor: fitted attributes, agreement with the library (CLI), pickling,
scikit-learn composition, bad input, Ctrl-C."""

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import mmfuse
from mmfuse import MKLClassifier, MKLRegressor


def test_fit_with_pair_interactions(mfeat_small):
    X, y, views = mfeat_small
    clf = MKLClassifier(views=views, interactions="pairs", p=1, C=10).fit(X[:200], y[:200])
    assert clf.blocks_ == ["kar", "mor", "zer", "kar*mor", "kar*zer", "mor*zer"]
    assert set(clf.relevance_) == set(clf.blocks_)
    assert abs(sum(clf.relevance_.values()) - 1) < 1e-12
    assert clf.beta_.shape == (10, 6) and clf.dual_gap_.shape == (10,)
    assert np.all(clf.dual_gap_ <= 1e-4) and clf.converged_.all()
    assert list(clf.classes_) == list(range(10))
    assert clf.n_features_in_ == X.shape[1]
    assert clf.decision_function(X[200:]).shape == (100, 10)
    assert clf.score(X[200:], y[200:]) > 0.8
    # p = 1 gives exact zeros somewhere
    assert (clf.beta_ == 0).any()


def test_multiple_kernels_on_one_view_and_string_labels(mfeat_small):
    X, y, views = mfeat_small
    labels = np.array(["even", "odd"])[y % 2]
    clf = MKLClassifier(views=views, kernels={"kar": ["rbf", "linear"]}, p="4/3").fit(X, labels)
    assert clf.blocks_ == ["kar[0]", "kar[1]", "mor", "zer"]
    assert clf.kernels_["kar[1]"] == "linear"
    assert clf.kernels_["kar[0]"] == f"rbf:gamma={1 / 64}"
    assert clf.decision_function(X).shape == (len(X),)
    assert set(clf.predict(X)) <= {"even", "odd"}


def test_regressor(mfeat_small):
    X, y, views = mfeat_small
    X = StandardScaler().fit_transform(X)
    target = X[:, views["mor"]][:, :2].sum(1)
    reg = MKLRegressor(views=views, C=100, p=2).fit(X[:200], target[:200])
    assert reg.score(X[200:], target[200:]) > 0.9
    assert reg.relevance_["mor"] == max(reg.relevance_.values())


def test_pickle_round_trips_through_the_binary_model(mfeat_small):
    X, y, views = mfeat_small
    clf = MKLClassifier(views=views, interactions="pairs").fit(X[:150], y[:150])
    blob = pickle.dumps(clf)
    assert clf.model_bytes_ in blob  # the library's model file, as it is
    back = pickle.loads(blob)
    assert np.array_equal(back.decision_function(X[150:]), clf.decision_function(X[150:]))
    assert back.relevance_ == clf.relevance_
    assert back._model == clf._model


def test_grid_search_with_two_jobs_and_pipeline(mfeat_small):
    X, y, views = mfeat_small
    pipe = Pipeline([("scale", StandardScaler()), ("mkl", MKLClassifier(views=views))])
    grid = {"mkl__p": [1.0, 2.0], "mkl__C": [1.0, 10.0]}
    gs = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
    local = GridSearchCV(pipe, grid, cv=3, n_jobs=1).fit(X, y)
    assert gs.best_params_ == local.best_params_
    assert np.array_equal(gs.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
    assert gs.best_score_ > 0.8


def test_equals_the_cli(mfeat_small, cli, tmp_path):
    """The estimator's decision values are bitwise those of `mmfuse mkl fit --data ... &&
    mmfuse mkl predict` on the same views, and the model files are the same bytes."""
    X, y, views = mfeat_small
    tr, te = slice(0, 200), slice(200, 300)
    args = [cli, "mkl", "fit", "--quiet", "--interactions", "pairs", "--p", "4/3", "--c", "5"]
    pargs = [cli, "mkl", "predict"]
    for name, sl in views.items():
        np.save(tmp_path / f"{name}.npy", np.ascontiguousarray(X[tr, sl]))
        np.save(tmp_path / f"{name}_test.npy", np.ascontiguousarray(X[te, sl]))
        args += ["--data", f"{name}={tmp_path / name}.npy"]
        pargs += ["--data", f"{name}={tmp_path / name}_test.npy"]
    np.save(tmp_path / "y.npy", y[tr].astype(np.float64))
    subprocess.run(args + ["--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "m.mkl")], check=True)
    subprocess.run(pargs + ["--model", str(tmp_path / "m.mkl"), "--out", str(tmp_path / "s.npy")], check=True)
    clf = MKLClassifier(views=views, interactions="pairs", p="4/3", C=5).fit(X[tr], y[tr])
    assert clf.model_bytes_ == (tmp_path / "m.mkl").read_bytes()
    ours = clf.decision_function(X[te])
    theirs = np.load(tmp_path / "s.npy")
    assert np.array_equal(ours, theirs.reshape(ours.shape))


def test_bad_input(mfeat_small):
    X, y, views = mfeat_small
    with pytest.raises(ValueError, match="invalid parameter `c`"):
        MKLClassifier(C=-1).fit(X, y)
    with pytest.raises(ValueError, match="p"):
        MKLClassifier(p=0.5).fit(X, y)
    with pytest.raises(ValueError, match="unknown kernel"):
        MKLClassifier(kernels="wavelet").fit(X, y)
    with pytest.raises(ValueError, match="does not select columns"):
        MKLClassifier(views={"a": slice(0, 10_000)}).fit(X, y)
    with pytest.raises(ValueError, match="column indices"):
        MKLClassifier(views={"a": [0, 1, 99_999]}).fit(X, y)
    with pytest.raises(ValueError, match="views that do not exist"):
        MKLClassifier(views=views, kernels={"nope": "rbf"}).fit(X, y)
    with pytest.raises(ValueError, match="unknown modality|unknown"):
        MKLClassifier(views=views, interactions="kar*nope").fit(X, y)
    with pytest.raises(ValueError, match="normalize"):
        MKLClassifier(views=views, interactions="pairs", normalize="trace").fit(X, y)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MKLClassifier().fit(bad, y)
    with pytest.raises(ValueError, match="[Cc]omplex"):
        MKLClassifier().fit(X + 1j, y)
    with pytest.raises(ValueError, match="class"):
        MKLClassifier().fit(X, np.zeros(len(y)))


def test_ctrl_c_during_a_long_fit_raises_keyboard_interrupt_within_a_second():
    """SIGINT from a timer thread 1.5 s into a fit that would take far longer: the fit stops
    with KeyboardInterrupt, at most a second after the signal."""
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        import numpy as np
        from mmfuse import MKLClassifier
        rng = np.random.default_rng(0)
        X = rng.normal(size=(1200, 40))
        y = (X[:, 0] * X[:, 1] + 0.5 * rng.normal(size=1200) > 0).astype(int)
        sent = []
        def fire():
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(1.5, fire).start()
        start = time.perf_counter()
        try:
            MKLClassifier(views={"a": slice(0, 20), "b": slice(20, 40)}, interactions="pairs",
                          p=2, C=100, eps=1e-300, tol=1e-300, max_iter=10**9).fit(X, y)
            print("FINISHED", time.perf_counter() - start)
        except KeyboardInterrupt:
            print("INTERRUPTED", time.perf_counter() - sent[0])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    word, secs = out.stdout.split()
    assert word == "INTERRUPTED", out.stdout
    assert float(secs) < 1.0, out.stdout


def test_rows_solver_matches_dense(mfeat_small):
    # Kernel rows on demand (no n x n matrix) reach the dense fit's optimum within the gap.
    X, y, views = mfeat_small
    labels = y % 2
    dense = MKLClassifier(views=views, solver="dense", eps=1e-5, tol=1e-5).fit(X, labels)
    rows = MKLClassifier(views=views, solver="rows", cache=64 << 20, eps=1e-5, tol=1e-5).fit(X, labels)
    assert rows.blocks_ == dense.blocks_
    assert np.allclose(rows.beta_, dense.beta_, atol=2e-2)
    agree = np.mean(rows.predict(X) == dense.predict(X))
    assert agree > 0.97
    # A tiny cache is a clear error, and so are rows for a regressor.
    with pytest.raises(ValueError, match="two kernel rows"):
        MKLClassifier(views=views, solver="rows", cache=100).fit(X, labels)
    with pytest.raises(ValueError, match="classifiers only"):
        MKLRegressor(views=views, solver="rows").fit(X, labels.astype(float))
    with pytest.raises(ValueError, match="solver"):
        MKLClassifier(views=views, solver="sparse").fit(X, labels)
