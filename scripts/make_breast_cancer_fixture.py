#!/usr/bin/env python3
"""Writes tests/fixtures/breast_cancer.csv from scikit-learn's bundled copy of the Wisconsin
diagnostic breast cancer data (569 samples x 30 features; no download). The last column is the
label (0 = malignant, 1 = benign). Run once; the CSV is committed:
    target/peers-venv/bin/python scripts/make_breast_cancer_fixture.py
"""
import os

import numpy as np
from sklearn.datasets import load_breast_cancer

data = load_breast_cancer()
table = np.column_stack([data.data, data.target.astype(float)])
out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "breast_cancer.csv")
header = ",".join([f"f{i}" for i in range(data.data.shape[1])] + ["label"])
np.savetxt(out, table, delimiter=",", header=header, comments="", fmt="%.10g")
print(out, table.shape)
