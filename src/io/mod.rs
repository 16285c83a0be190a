//! File formats: `.npy`, `.npz`, CSV; atomic writes.
