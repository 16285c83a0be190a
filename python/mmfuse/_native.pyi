"""Type stubs of the native module ``mmfuse._native`` (Rust, PyO3)."""

from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike]

def gram(
    x: npt.NDArray[np.floating],
    y: Optional[npt.NDArray[np.floating]] = None,
    kernel: str = "rbf",
    normalize: Optional[str] = None,
    threads: Optional[int] = None,
) -> npt.NDArray[np.floating]: ...
def self_similarities(x: npt.NDArray[np.float64], kernel: str = "rbf") -> npt.NDArray[np.float64]: ...
def resolve_kernel(spec: str, d: int) -> str: ...
def parse_p(p: str) -> float: ...
def isa() -> str: ...
def mfeat() -> Tuple[List[Tuple[str, npt.NDArray[np.float64]]], npt.NDArray[np.float64]]: ...
def panic_for_tests() -> None: ...
def mkl_fit(
    views: Sequence[Tuple[str, npt.NDArray[np.float64], str]],
    y: npt.NDArray[np.float64],
    classify: bool,
    interactions: str = "none",
    normalize: Optional[str] = None,
    p: str = "2",
    c: float = 1.0,
    eps: float = 1e-4,
    tol: float = 1e-3,
    max_iter: int = 200,
    allow_indefinite: bool = False,
    threads: Optional[int] = None,
    solver: str = "auto",
    cache: Optional[int] = None,
) -> MklModel: ...
def lmf_new(
    modalities: Sequence[Tuple[str, int]], blocks: str, rank: int, out_dim: int, p: str, seed: int
) -> Lmf: ...

class MklModel:
    def decision_function(
        self, views: Sequence[Tuple[str, npt.NDArray[np.float64]]], threads: Optional[int] = None
    ) -> npt.NDArray[np.float64]: ...
    def predict(
        self, views: Sequence[Tuple[str, npt.NDArray[np.float64]]], threads: Optional[int] = None
    ) -> npt.NDArray[np.float64]: ...
    def summary(self) -> Dict[str, Any]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> MklModel: ...
    def save(self, path: _Path) -> None: ...
    @staticmethod
    def load(path: _Path) -> MklModel: ...

class Lmf:
    modalities: List[str]
    dims: List[int]
    blocks: List[str]
    rank: int
    out_dim: int
    p: float
    def train(
        self,
        views: Sequence[Tuple[str, npt.NDArray[np.float32]]],
        targets: npt.NDArray[np.float32],
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-2,
        loss: str = "mse",
        reg: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        seed: int = 0,
        shuffle: bool = True,
        validation_fraction: float = 0.0,
        patience: Optional[int] = None,
        threads: Optional[int] = None,
    ) -> Dict[str, Any]: ...
    def forward(
        self, views: Sequence[Tuple[str, npt.NDArray[np.float32]]], threads: Optional[int] = None
    ) -> npt.NDArray[np.float32]: ...
    def relevance(self) -> Dict[str, List[Any]]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> Lmf: ...
    def save(self, path: _Path) -> None: ...
    @staticmethod
    def load(path: _Path) -> Lmf: ...

def plain_lmf_new(modalities: Sequence[Tuple[str, int]], rank: int, out_dim: int, seed: int) -> PlainLmf: ...
def is_block_model(data: bytes) -> bool: ...

class PlainLmf:
    modalities: List[str]
    dims: List[int]
    rank: int
    out_dim: int
    def train(
        self,
        views: Sequence[Tuple[str, npt.NDArray[np.float32]]],
        targets: npt.NDArray[np.float32],
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-2,
        loss: str = "mse",
        weight_decay: float = 0.0,
        seed: int = 0,
        shuffle: bool = True,
        validation_fraction: float = 0.0,
        patience: Optional[int] = None,
        threads: Optional[int] = None,
    ) -> Dict[str, Any]: ...
    def forward(
        self, views: Sequence[Tuple[str, npt.NDArray[np.float32]]], threads: Optional[int] = None
    ) -> npt.NDArray[np.float32]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes, order: Optional[Sequence[str]] = None) -> PlainLmf: ...
    def save(self, path: _Path) -> None: ...
