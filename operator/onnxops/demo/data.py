"""The demo's data: scikit-learn's bundled iris ("the clean world"), a skewed copy that v2 is trained on,
and a "shifted world" the live traffic moves to in step 5 (no file: the retrain trains on that traffic as
the server captured it, joined with the labels the traffic generator sends as feedback).

Everything is deterministic (fixed transforms, seeded sampling) and on iris' own 0.1 cm measurement grid,
so the same files come out locally and in a cluster Job (`python -m onnxops.demo.data <dir>`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
TARGET = "species"
SPECIES = ("setosa", "versicolor", "virginica")
SKEWED_CSV = "iris-skewed.csv"

# v2's training data: a mis-calibrated instrument (scale and offset per feature), rounded to 0.1 cm.
SKEW_SCALE = np.array([1.15, 0.8, 1.3, 1.4])
SKEW_OFFSET = np.array([0.6, -0.3, 1.0, 0.4])
# The world after step 5: every flower grew (an additive shift on the 0.1 cm grid).
SHIFT = np.array([0.8, 0.4, 1.2, 0.6])
# The concept-drift scenario's change of the world: the inputs stay where they were, but every flower with
# a petal longer than this (cm) is now of class 1 (versicolor): the true labels change for part of the
# input space, the inputs do not.
RELABEL_PETAL_CM = 5.0
# Live rows = a data set row + Gaussian measurement noise of this many 0.1 cm steps, rounded to the grid.
NOISE_STEPS = 0.5


@dataclass(frozen=True)
class World:
    """Rows (n x 4, cm) and their species indices."""

    name: str
    X: np.ndarray
    y: np.ndarray


def _round(x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, dtype=float), 1)


def clean() -> World:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    return World("clean", _round(bunch.data), np.asarray(bunch.target, dtype=int))


def skewed(base: World | None = None) -> World:
    b = base or clean()
    return World("skewed", _round(b.X * SKEW_SCALE + SKEW_OFFSET), b.y)


def shifted(base: World | None = None) -> World:
    b = base or clean()
    return World("shifted", _round(b.X + SHIFT), b.y)


def relabelled(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The truth after the concept change (``onnxops demo --scenario concept-drift``): class 1 wherever the
    petal length exceeds RELABEL_PETAL_CM, the old class elsewhere."""
    return np.where(np.asarray(x)[:, 2] > RELABEL_PETAL_CM, 1, np.asarray(y))


def to_csv(world: World) -> str:
    """CSV text with the columns the examples name (features, then `species` as a name)."""
    lines = [",".join((*FEATURES, TARGET))]
    for row, label in zip(world.X.tolist(), world.y.tolist(), strict=True):
        lines.append(",".join(f"{v:.1f}" for v in row) + f",{SPECIES[label]}")
    return "\n".join(lines) + "\n"


def write_datasets(directory: Path) -> dict[str, Path]:
    """Write the skewed CSV (v2's training set) into ``directory`` (atomically); returns name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    base = clean()
    out = {}
    for name, world in ((SKEWED_CSV, skewed(base)),):
        path = directory / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(to_csv(world))
        tmp.replace(path)
        out[name] = path
    return out


def sample_rows(
    world: World, n: int, rng: np.random.Generator, noise_steps: float = NOISE_STEPS
) -> np.ndarray:
    """``n`` realistic rows of ``world``: a random row plus measurement noise, on the 0.1 cm grid, > 0."""
    return sample_labelled(world, n, rng, noise_steps)[0]


def sample_labelled(
    world: World, n: int, rng: np.random.Generator, noise_steps: float = NOISE_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """``sample_rows`` and the species index of each row (the ground truth the generator labels with)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    idx = rng.integers(0, len(world.X), size=n)
    noisy = world.X[idx] + rng.normal(0.0, 0.1 * noise_steps, size=(n, world.X.shape[1]))
    out: np.ndarray = np.maximum(_round(noisy), 0.1)
    return out, world.y[idx]


def main(argv: list[str]) -> int:
    """`python -m onnxops.demo.data DIR`: write the demo's CSVs into DIR (cluster mode runs it in a Job)."""
    if len(argv) != 1:
        print("usage: python -m onnxops.demo.data DIR", file=sys.stderr)
        return 2
    for path in write_datasets(Path(argv[0])).values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
