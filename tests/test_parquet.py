"""Parquet input: column selection through pyarrow (unused columns never read) and the same
one-line InputError messages as for text files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bayesmix.data import load_data
from bayesmix.errors import InputError


@pytest.fixture
def wide(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=50),
            "b": rng.normal(size=50),
            "label": [f"r{i}" for i in range(50)],
            "c": rng.integers(0, 9, size=50),
        }
    )
    path = tmp_path / "wide.parquet"
    df.to_parquet(path, index=False)
    return path, df


def test_only_the_selected_columns_are_read(wide, monkeypatch):
    path, df = wide
    seen = []
    real = pq.read_table

    def spy(source, columns=None, **kw):
        seen.append(list(columns) if columns is not None else None)
        return real(source, columns=columns, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    data = load_data(path, columns=["b", "a"])
    assert seen == [["b", "a"]]
    assert data.columns == ["b", "a"]
    np.testing.assert_array_equal(data.values, df[["b", "a"]].to_numpy())
    assert data.values.dtype == np.float64
    assert not any("skipped" in note for note in data.notes)  # 'label' was never loaded


def test_all_numeric_columns_without_selection(wide):
    path, df = wide
    data = load_data(path)
    assert data.columns == ["a", "b", "c"]
    assert any("label" in note for note in data.notes)  # skipped, and said so


def test_missing_column_message(wide):
    path, _ = wide
    with pytest.raises(InputError, match=r"column 'zz' not found \(available: a, b, label, c\)"):
        load_data(path, columns=["a", "zz"])


def test_non_numeric_column_message(wide):
    path, _ = wide
    with pytest.raises(InputError, match=r"column 'label' is not numeric \(row 1: 'r0'\)"):
        load_data(path, columns=["a", "label"])


def test_unreadable_parquet_is_one_line(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all\n" * 10)
    with pytest.raises(InputError) as exc:
        load_data(bad)
    msg = str(exc.value)
    assert msg.startswith(f"{bad}: cannot parse file as Parquet") and "\n" not in msg


def test_parquet_groups_read_the_by_column_too(tmp_path):
    from bayesmix.data import load_groups

    df = pd.DataFrame({"g": ["u"] * 6 + ["v"] * 6, "x": np.arange(12.0) ** 1.5, "y": 1.0})
    path = tmp_path / "g.parquet"
    df.to_parquet(path, index=False)
    groups, _ = load_groups(path, "g", columns=["x"])
    assert [k for k, _ in groups] == ["u", "v"]
    assert groups[0][1].columns == ["x"]
