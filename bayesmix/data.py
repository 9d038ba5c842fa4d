"""Data intake: read CSV/TSV/Parquet files or arrays, validate, standardise.

Every problem raises :class:`bayesmix.errors.InputError` with one message that
names the file, column or row; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix.errors import InputError

MIN_ROWS = 5
DATASETS_DIR = Path(__file__).parent / "datasets"
_SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon"}
_QUOTED = re.compile(r'"[^"]*"')


@dataclass
class Dataset:
    """Validated numeric data and its standardisation x_std = (x - center) / scale."""

    values: np.ndarray  # (N, D) in the data's own units
    columns: list[str]
    source: str
    row_labels: np.ndarray  # 1-based row numbers (after header), or the file's row names
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


@dataclass
class _Table:
    """A frame as read, with what was learned while reading it."""

    frame: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None  # row names found while reading
    is_file: bool = False


def _read_parquet(path: Path, columns: list[str] | None) -> _Table:
    """A Parquet file through pyarrow, reading only ``columns`` when given (the others are
    never loaded: memory about the size of the selected columns, twice over while they are
    converted); a missing column gets the same message as for a text file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(path)
    try:
        names = list(pq.read_schema(path).names)
    except PermissionError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{name}: cannot parse file as Parquet ({first})") from None
    names = [c for c in names if not c.startswith("__index_level_")]
    if columns:
        missing = [c for c in columns if c not in names]
        if missing:
            raise InputError(
                f"{name}: column '{missing[0]}' not found (available: {', '.join(names)})"
            )
    try:
        table = pq.read_table(path, columns=list(columns) if columns else names)
    except PermissionError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{name}: cannot read Parquet file ({first})") from None
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    return _Table(frame.reset_index(drop=True), name, is_file=True)


PARQUET_SUFFIXES = (".parquet", ".pq")


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of a directory (suffix .parquet or .pq), in name order."""
    return sorted(p for p in path.iterdir() if p.suffix.lower() in PARQUET_SUFFIXES and p.is_file())


def parquet_pieces(path: str | Path) -> list[tuple[str, int | None]]:
    """The shards of a Parquet data set, in row order: a directory, one per file (name order,
    the whole file); a file, one per row group.  Each is (file, row group or None)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        files = parquet_files(path)
        if not files:
            raise InputError(f"{path}: a directory without .parquet files")
        return [(str(f), None) for f in files]
    if path.suffix.lower() not in PARQUET_SUFFIXES:
        raise InputError(f"{path}: the sharded engine reads Parquet (.parquet, .pq) files")
    try:
        groups = pq.ParquetFile(path).metadata.num_row_groups
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot parse file as Parquet ({first})") from None
    return [(str(path), g) for g in range(max(1, groups))]


def _read_parquet_dir(path: Path, columns: list[str] | None) -> _Table:
    """The Parquet files of a directory, concatenated in name order (``parquet_pieces``)."""
    parts = [_read_parquet(f, columns) for f in parquet_files(path)]
    first = list(parts[0].frame.columns)
    for f, part in zip(parquet_files(path), parts, strict=True):
        if list(part.frame.columns) != first:
            raise InputError(
                f"{f}: columns {', '.join(part.frame.columns)} differ from those of the first "
                f"file of {path} ({', '.join(first)})"
            )
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    return _Table(frame, str(path), is_file=True)


def _read_table(path: Path, columns: list[str] | None = None) -> _Table:
    name = str(path)
    if not path.exists():
        shipped = DATASETS_DIR / f"{name}.csv"
        if path.parent == Path(".") and not path.suffix and shipped.is_file():
            table = _read_table(shipped)  # a shipped data set by name
            table.notes.append(f"'{name}' is the shipped data set bayesmix/datasets/{name}.csv")
            return table
        hint = ", ".join(sorted(p.stem for p in DATASETS_DIR.glob("*.csv")))
        raise InputError(f"{name}: file not found (or a shipped data set by name: {hint})")
    if path.is_dir():
        if not parquet_files(path):
            raise InputError(
                f"{name}: is a directory without .parquet files, expected a CSV, TSV or Parquet "
                "file (or a directory of Parquet files)"
            )
        return _read_parquet_dir(path, columns)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{name}: cannot read file ({exc.strerror})") from None
    if size == 0:
        raise InputError(f"{name}: file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return _read_parquet(path, columns)
        return _read_text(path, "\t" if suffix in (".tsv", ".tab") else ",")
    except InputError:
        raise
    except PermissionError:
        raise InputError(f"{name}: cannot read file (permission denied)") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{name}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{name}: cannot parse file ({first})") from None


def _head_lines(path: Path, n: int = 2) -> list[str]:
    """The first ``n`` non-blank lines of a text file, decoded leniently (64 KiB at most each)."""
    lines: list[str] = []
    with path.open("rb") as fh:
        while len(lines) < n and (raw := fh.readline(65536)):
            text = raw.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
            if text.strip():
                lines.append(text)
    return lines


def _short(line: str, limit: int = 60) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _sniff_sep(header: str, default: str) -> str:
    """``default`` if it occurs outside quotes in ``header``, else the first of , TAB ; that does."""
    bare = _QUOTED.sub("", header)
    if default in bare:
        return default
    return next((s for s in _SEPARATORS if s in bare), default)


def _n_numeric(frame: pd.DataFrame) -> int:
    return sum(_is_numeric(frame[c]) for c in frame.columns)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _read_text(path: Path, default_sep: str) -> _Table:
    """Read a delimited text file, sniffing the delimiter (and decimal mark) from its header."""
    lines = _head_lines(path)
    header = _short(lines[0]) if lines else ""
    sep = _sniff_sep(lines[0] if lines else "", default_sep)
    notes: list[str] = []
    if sep == ";":
        frame, decimal = pd.read_csv(path, sep=";", decimal=","), ","
        if _n_numeric(frame) < frame.shape[1]:  # perhaps decimal points, or text columns
            alt = pd.read_csv(path, sep=";")
            if _n_numeric(alt) > _n_numeric(frame):
                frame, decimal = alt, "."
        if _n_numeric(frame) == 0:
            raise InputError(
                f"{path}: looks like a semicolon-separated file (first line: {header!r}); "
                "no column is numeric with either ',' or '.' as the decimal mark, so save it "
                "as a comma-separated file with '.' as the decimal mark"
            )
        mark = "decimal commas" if decimal == "," else "decimal points"
        notes.append(f"read as a semicolon-separated file with {mark} (first line: {header!r})")
    else:
        decimal = "."
        frame = pd.read_csv(path, sep=sep)
        if sep != default_sep:
            notes.append(f"read as a {_SEPARATORS[sep]}-separated file (first line: {header!r})")
    table = _Table(frame, str(path), notes, is_file=True)
    _fix_implicit_index(table, path, {"sep": sep, "decimal": decimal}, lines)
    return table


def _fix_implicit_index(table: _Table, path: Path, read: dict, lines: list[str]) -> None:
    """Handle data rows with more fields than the header (pandas indexes the extra first ones).

    A trailing delimiter on every row is ignored; one extra leading field is taken as row
    names (R's ``write.table``), except in a one-column comma file, where it is more likely
    a decimal comma and is an error; more than one extra field is an error.
    """
    frame, header = table.frame, _short(lines[0]) if lines else ""
    if frame.index.equals(pd.RangeIndex(len(frame))):
        return
    if isinstance(frame.index, pd.MultiIndex):
        raise InputError(
            f"{path}: the data rows have {frame.index.nlevels} more fields than the header "
            f"(first line: {header!r}); check the delimiter and the decimal mark"
        )
    if frame.shape[1] > 0 and frame.iloc[:, -1].isna().all():
        table.frame = pd.read_csv(path, index_col=False, **read)
        table.notes.append("ignored the empty last field of every data row (a trailing delimiter)")
        return
    second = lines[1] if len(lines) > 1 else ""
    if frame.shape[1] == 1 and read["sep"] == "," and not second.lstrip().startswith('"'):
        raise InputError(
            f"{path}: the header has 1 field but the data rows have 2 (first lines: "
            f"{header!r}, {_short(second)!r}); if the numbers have decimal commas, write them "
            "with '.' or separate the fields with ';'"
        )
    table.frame = frame.reset_index(drop=True)
    table.labels, note = _row_names(
        frame.index.to_series(),
        "the first field of each data row, which has no header",
        "R's write.table",
    )
    table.notes.append(note)


def _row_names(values: pd.Series, what: str, writer: str) -> tuple[np.ndarray | None, str]:
    """Row labels from a row-names column (when unique and complete) and the note that says so."""
    note = f"dropped {what} (row names, as written by {writer}); "
    if values.notna().all() and values.is_unique:
        return values.to_numpy(), note + "the row labels in assignments.csv come from it"
    return None, note + "its values are not unique, so assignments.csv numbers the rows from 1"


def _drop_unnamed_first(table: _Table, columns: list[str] | None) -> None:
    """Drop an unnamed leading column of a file (row names) unless ``columns`` asks for it."""
    frame = table.frame
    if not table.is_file or table.labels is not None or frame.shape[1] < 2:
        return
    first = frame.columns[0]
    if first not in ("", "Unnamed: 0") or (columns and first in columns):
        return
    values = frame[first]
    pandas_index = np.array_equal(values.to_numpy(), np.arange(len(values)))
    writer = "pandas' to_csv" if pandas_index else "R's write.csv"
    table.labels, note = _row_names(values, "the unnamed first column", writer)
    table.frame = frame.drop(columns=first)
    table.notes.append(note)


def _as_frame(data: object, columns: list[str] | None = None) -> _Table:
    if isinstance(data, (str, Path)):
        return _read_table(Path(data), columns)
    if isinstance(data, pd.DataFrame):
        return _Table(data, "<DataFrame>")
    if isinstance(data, pd.Series):
        return _Table(data.to_frame(name=str(data.name or "x")), "<Series>")
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"<array>: expected a 1-D or 2-D array, got shape {arr.shape}")
    cols = [f"x{j}" for j in range(arr.shape[1])] if arr.shape[1] > 1 else ["x"]
    return _Table(pd.DataFrame(arr, columns=cols), "<array>")


def _index_like_notes(frame: pd.DataFrame, numeric: list[str]) -> list[str]:
    """Notes for integer columns that are exactly the row numbers 1..N (or 0..N-1)."""
    n, notes = len(frame), []
    for c in numeric:
        if not pd.api.types.is_integer_dtype(frame[c]):
            continue
        v = frame[c].to_numpy()
        for lo in (1, 0):
            if np.array_equal(v, np.arange(lo, lo + n)):
                notes.append(
                    f"column '{c}' holds the row numbers {lo}..{lo + n - 1} and is used as a "
                    "feature; if it is an identifier, choose the other columns with --columns"
                )
    return notes


def _select(table: _Table, columns: list[str] | None) -> pd.DataFrame:
    """The requested columns (each must exist and be numeric) or every numeric column."""
    frame, source = table.frame, table.source
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"{source}: column '{missing[0]}' not found (available: {', '.join(frame.columns)})"
            )
        for c in columns:
            if not _is_numeric(frame[c]):
                bad = _first_non_numeric(frame[c])
                raise InputError(
                    f"{source}: column '{c}' is not numeric"
                    + (f" (row {bad[0]}: {bad[1]!r})" if bad else "")
                )
        return frame[list(columns)]
    numeric = [c for c in frame.columns if _is_numeric(frame[c])]
    if not numeric:
        raise InputError(
            f"{source}: no numeric columns (columns: {', '.join(frame.columns)}); "
            "choose them with --columns"
        )
    skipped = [c for c in frame.columns if c not in numeric]
    if skipped:
        table.notes.append(
            f"skipped non-numeric column(s): {', '.join(skipped)} (use --columns to choose columns)"
        )
    if table.is_file:
        table.notes.extend(_index_like_notes(frame, numeric))
    return frame[numeric]


def load_data(
    data: object,
    columns: list[str] | None = None,
    dropna: bool = False,
) -> Dataset:
    """Read and validate data; select numeric ``columns`` (default: every numeric one).

    Rejects missing/empty files, unknown or non-numeric columns, NaN/inf values
    (unless ``dropna``), fewer than 5 rows and constant columns. Every adjustment made
    to a file while reading it is recorded in ``Dataset.notes``:

    * a header without ``,`` (or TAB for .tsv) but with TAB, ``,`` or ``;`` is read with
      that delimiter; a ``;`` file with decimal commas or points, whichever gives more
      numeric columns (no numeric column at all is an error with a hint);
    * an unnamed first column (empty header, R's ``write.csv``, pandas' ``to_csv``) and an
      extra first field with no header (R's ``write.table``) are row names: they are not
      used as features and, when unique, become ``Dataset.row_labels`` (as read: ints or
      strings; otherwise the 1-based row numbers); a named column such as ``id`` is kept,
      with a note when it is an integer column that is exactly 1..N or 0..N-1;
    * a trailing delimiter on every row is ignored;
    * without ``columns``, the non-numeric columns that are skipped are named.
    """
    return _dataset(_read_checked(data, columns), columns, dropna)


def _read_checked(data: object, columns: list[str] | None, also: tuple[str, ...] = ()) -> _Table:
    """The table as read (a Parquet file: only ``columns`` and ``also``, when columns are
    given), with string column names and row names taken out."""
    table = _as_frame(
        data, list(columns) + [c for c in also if c not in columns] if columns else None
    )
    if table.frame.shape[0] == 0:
        raise InputError(f"{table.source}: has a header but no data rows")
    table.frame.columns = [str(c) for c in table.frame.columns]
    _drop_unnamed_first(table, columns)
    return table


def _dataset(table: _Table, columns: list[str] | None, dropna: bool) -> Dataset:
    """Validate a table's numeric columns into a Dataset (the checks load_data describes)."""
    source, notes = table.source, table.notes
    selected = _select(table, columns)
    values = selected.to_numpy(dtype=np.float64, copy=True)
    rows = table.labels if table.labels is not None else np.arange(1, values.shape[0] + 1)
    finite = np.isfinite(values)
    if not finite.all():
        bad_rows = ~finite.all(axis=1)
        if dropna:
            values, rows = values[~bad_rows], rows[~bad_rows]
            notes.append(f"dropped {int(bad_rows.sum())} row(s) with NaN or inf values")
        else:
            i, j = np.argwhere(~finite)[0]
            raise InputError(
                f"{source}: row {_row_name(i, rows[i])}, column '{selected.columns[j]}' is "
                f"{values[i, j]} "
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


def load_groups(
    data: object,
    by: str,
    columns: list[str] | None = None,
    dropna: bool = False,
) -> tuple[list[tuple[str, Dataset | InputError]], list[str]]:
    """Read ``data`` once and split it by the values of column ``by``.

    Returns ([(group key, Dataset or the InputError its data raise)], notes), groups in
    sorted order of ``by``. Each group's data go through the same checks as ``load_data``,
    as a file holding only that group's rows would (so a bad group gets the message ``fit``
    gives there: rows numbered within the group), with the source named ``<file> [by =
    key]``; the file's row names, if any, are kept. The ``by`` column is never a feature.
    Rows without a group are an error (dropped with ``dropna``).
    """
    table = _read_checked(data, columns, also=(by,))
    frame, source = table.frame, table.source
    if by not in frame.columns:
        raise InputError(
            f"{source}: --by column '{by}' not found (available: {', '.join(frame.columns)})"
        )
    if columns and by in columns:
        raise InputError(f"{source}: column '{by}' is the --by column; it cannot be a feature too")
    notes = list(table.notes)
    missing = frame[by].isna().to_numpy()
    if missing.any():
        if not dropna:
            i = int(np.flatnonzero(missing)[0])
            raise InputError(
                f"{source}: row {i + 1}, column '{by}' is empty: every row "
                "needs a group (use --dropna to drop such rows)"
            )
        notes.append(f"dropped {int(missing.sum())} row(s) with no value in column '{by}'")
    out: list[tuple[str, Dataset | InputError]] = []
    for value, idx in frame[~missing].groupby(by, sort=True).indices.items():
        rows = np.flatnonzero(~missing)[idx]
        key = str(value)
        sub = _Table(
            frame.iloc[rows].drop(columns=by).reset_index(drop=True),
            f"{source} [{by} = {key}]",
            list(table.notes),
            None if table.labels is None else table.labels[rows],
            table.is_file,
        )
        try:
            out.append((key, _dataset(sub, columns, dropna)))
        except InputError as exc:
            out.append((key, exc))
    return out, notes


def _row_name(i: int, label: object) -> str:
    """Row ``i`` (0-based) as 1-based number, with its row name when that differs."""
    return f"{i + 1}" if label == i + 1 else f"{i + 1} ({label!r})"


def _first_non_numeric(series: pd.Series) -> tuple[int, object] | None:
    coerced = pd.to_numeric(series, errors="coerce")
    bad = coerced.isna() & series.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        return pos + 1, series.iloc[pos]
    return None


def load_dataset(name: str) -> pd.DataFrame:
    """A shipped data set: ``galaxies`` (1-D; ``galaxies_rg97`` with Richardson & Green's
    value 26,960 for row 78), ``faithful`` (2-D) or ``iris``."""
    path = DATASETS_DIR / f"{name}.csv"
    if not path.is_file():
        names = sorted(p.stem for p in DATASETS_DIR.glob("*.csv"))
        raise InputError(f"unknown data set '{name}' (shipped: {', '.join(names)})")
    return pd.read_csv(path)


def dataset_path(name: str) -> Path:
    """Path of a shipped data set's CSV file."""
    load_dataset(name)  # validates the name
    return DATASETS_DIR / f"{name}.csv"
