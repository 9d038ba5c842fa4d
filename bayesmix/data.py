"""Data intake: read CSV/TSV/Parquet files or arrays, validate, standardise.

Every problem raises :class:`bayesmix.errors.InputError` with one message that
names the file, column or row; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix.errors import InputError

MIN_ROWS = 5
DATASETS_DIR = Path(__file__).parent / "datasets"


@dataclass
class Dataset:
    """Validated numeric data and its standardisation x_std = (x - center) / scale."""

    values: np.ndarray  # (N, D) in the data's own units
    columns: list[str]
    source: str
    row_labels: np.ndarray  # 1-based row numbers in the source (after header)
    notes: list[str] = field(default_factory=list)

    @property
    def center(self) -> np.ndarray:
        return self.values.mean(axis=0)

    @property
    def scale(self) -> np.ndarray:
        return self.values.std(axis=0, ddof=1)

    @property
    def standardized(self) -> np.ndarray:
        return (self.values - self.center) / self.scale

    @property
    def n_obs(self) -> int:
        return self.values.shape[0]

    @property
    def n_features(self) -> int:
        return self.values.shape[1]

    @property
    def sha256(self) -> str:
        """Hash of the numeric values (float64, C order) and column names."""
        h = hashlib.sha256(np.ascontiguousarray(self.values, dtype=np.float64).tobytes())
        h.update("\x1f".join(self.columns).encode())
        return h.hexdigest()

    def describe(self) -> dict:
        return {
            "n_obs": self.n_obs,
            "n_features": self.n_features,
            "columns": list(self.columns),
            "sha256": self.sha256,
            "source": self.source,
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "notes": list(self.notes),
        }


def _read_table(path: Path) -> pd.DataFrame:
    name = str(path)
    if not path.exists():
        raise InputError(f"{name}: file not found")
    if path.is_dir():
        raise InputError(f"{name}: is a directory, expected a CSV, TSV or Parquet file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{name}: cannot read file ({exc.strerror})") from None
    if size == 0:
        raise InputError(f"{name}: file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        sep = "\t" if suffix in (".tsv", ".tab") else ","
        return pd.read_csv(path, sep=sep)
    except PermissionError:
        raise InputError(f"{name}: cannot read file (permission denied)") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{name}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{name}: cannot parse file ({first})") from None


def _as_frame(data: object) -> tuple[pd.DataFrame, str]:
    if isinstance(data, (str, Path)):
        path = Path(data)
        return _read_table(path), str(path)
    if isinstance(data, pd.DataFrame):
        return data, "<DataFrame>"
    if isinstance(data, pd.Series):
        return data.to_frame(name=str(data.name or "x")), "<Series>"
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"<array>: expected a 1-D or 2-D array, got shape {arr.shape}")
    cols = [f"x{j}" for j in range(arr.shape[1])] if arr.shape[1] > 1 else ["x"]
    return pd.DataFrame(arr, columns=cols), "<array>"


def load_data(
    data: object,
    columns: list[str] | None = None,
    dropna: bool = False,
) -> Dataset:
    """Read and validate data; select numeric ``columns`` (default: every numeric one).

    Rejects missing/empty files, unknown or non-numeric columns, NaN/inf values
    (unless ``dropna``), fewer than 5 rows and constant columns.
    """
    frame, source = _as_frame(data)
    if frame.shape[0] == 0:
        raise InputError(f"{source}: has a header but no data rows")
    frame.columns = [str(c) for c in frame.columns]
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"{source}: column '{missing[0]}' not found (available: {', '.join(frame.columns)})"
            )
        for c in columns:
            if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]):
                bad = _first_non_numeric(frame[c])
                raise InputError(
                    f"{source}: column '{c}' is not numeric"
                    + (f" (row {bad[0]}: {bad[1]!r})" if bad else "")
                )
        selected = frame[list(columns)]
    else:
        numeric = [
            c
            for c in frame.columns
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        ]
        if not numeric:
            raise InputError(
                f"{source}: no numeric columns (columns: {', '.join(frame.columns)}); "
                "choose them with --columns"
            )
        selected = frame[numeric]
    values = selected.to_numpy(dtype=np.float64, copy=True)
    rows = np.arange(1, values.shape[0] + 1)
    notes: list[str] = []
    finite = np.isfinite(values)
    if not finite.all():
        bad_rows = ~finite.all(axis=1)
        if dropna:
            values, rows = values[~bad_rows], rows[~bad_rows]
            notes.append(f"dropped {int(bad_rows.sum())} row(s) with NaN or inf values")
        else:
            i, j = np.argwhere(~finite)[0]
            raise InputError(
                f"{source}: row {rows[i]}, column '{selected.columns[j]}' is {values[i, j]} "
                "(use --dropna to drop rows with missing or infinite values)"
            )
    if values.shape[0] < MIN_ROWS:
        raise InputError(
            f"{source}: only {values.shape[0]} usable row(s); at least {MIN_ROWS} are needed"
        )
    sd = values.std(axis=0, ddof=1)
    for j in np.flatnonzero(~(sd > 0)):
        raise InputError(f"{source}: column '{selected.columns[j]}' is constant")
    return Dataset(values, list(selected.columns), source, rows, notes)


def _first_non_numeric(series: pd.Series) -> tuple[int, object] | None:
    coerced = pd.to_numeric(series, errors="coerce")
    bad = coerced.isna() & series.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        return pos + 1, series.iloc[pos]
    return None


def load_dataset(name: str) -> pd.DataFrame:
    """A shipped data set: ``galaxies`` (1-D), ``faithful`` (2-D) or ``iris``."""
    path = DATASETS_DIR / f"{name}.csv"
    if not path.is_file():
        names = sorted(p.stem for p in DATASETS_DIR.glob("*.csv"))
        raise InputError(f"unknown data set '{name}' (shipped: {', '.join(names)})")
    return pd.read_csv(path)


def dataset_path(name: str) -> Path:
    """Path of a shipped data set's CSV file."""
    load_dataset(name)  # validates the name
    return DATASETS_DIR / f"{name}.csv"
