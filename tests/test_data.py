"""Data intake: every bad input gives one clear InputError; good input is standardised."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmix.data import dataset_path, load_data, load_dataset
from bayesmix.errors import InputError


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        load_data(tmp_path / "nope.csv")


def test_unreadable_file(tmp_path, monkeypatch):
    p = write(tmp_path, "locked.csv", "a\n1\n2\n3\n4\n5\n")

    def deny(*args, **kwargs):  # root can read mode-000 files, so simulate the refusal
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pd, "read_csv", deny)
    with pytest.raises(InputError, match=r"locked\.csv: cannot read file \(permission denied\)"):
        load_data(p)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        load_data(tmp_path)


def test_empty_file(tmp_path):
    with pytest.raises(InputError, match="file is empty"):
        load_data(write(tmp_path, "empty.csv", ""))


def test_header_without_rows(tmp_path):
    with pytest.raises(InputError, match="header but no data rows"):
        load_data(write(tmp_path, "header.csv", "a,b\n"))


def test_unknown_column_lists_available(tmp_path):
    p = write(tmp_path, "d.csv", "a,b\n" + "".join(f"{i},{i * i}\n" for i in range(6)))
    with pytest.raises(InputError, match=r"column 'c' not found \(available: a, b\)"):
        load_data(p, columns=["c"])


def test_non_numeric_column_requested(tmp_path):
    p = write(tmp_path, "d.csv", "a,b\n" + "".join(f"{i},x{i}\n" for i in range(6)))
    with pytest.raises(InputError, match=r"column 'b' is not numeric \(row 1: 'x0'\)"):
        load_data(p, columns=["b"])


def test_no_numeric_columns(tmp_path):
    p = write(tmp_path, "d.csv", "b\n" + "".join(f"x{i}\n" for i in range(6)))
    with pytest.raises(InputError, match="no numeric columns"):
        load_data(p)


def test_nan_names_row_and_column(tmp_path):
    rows = [f"{i},{i * 2}" for i in range(8)]
    rows[3] = "3,"
    p = write(tmp_path, "d.csv", "a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"row 4, column 'b' is nan.*--dropna"):
        load_data(p)


def test_inf_is_rejected(tmp_path):
    rows = [f"{i},{i * 2}" for i in range(8)]
    rows[5] = "inf,10"
    p = write(tmp_path, "d.csv", "a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"row 6, column 'a' is inf"):
        load_data(p)


def test_dropna_drops_and_reports(tmp_path):
    rows = [f"{i},{(i * 7) % 5}" for i in range(9)]
    rows[2] = "2,"
    rows[4] = "nan,3"
    p = write(tmp_path, "d.csv", "a,b\n" + "\n".join(rows) + "\n")
    ds = load_data(p, dropna=True)
    assert ds.n_obs == 7
    assert ds.notes == ["dropped 2 row(s) with NaN or inf values"]
    assert list(ds.row_labels) == [1, 2, 4, 6, 7, 8, 9]


def test_too_few_rows(tmp_path):
    p = write(tmp_path, "d.csv", "a\n1\n2\n3\n4\n")
    with pytest.raises(InputError, match="only 4 usable row"):
        load_data(p)


def test_constant_column(tmp_path):
    p = write(tmp_path, "d.csv", "a,b\n" + "".join(f"{i},7\n" for i in range(6)))
    with pytest.raises(InputError, match="column 'b' is constant"):
        load_data(p)


def test_unparseable_file(tmp_path):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x01\x02" * 50)
    with pytest.raises(InputError, match="bin.csv"):
        load_data(p)


def test_tsv_and_parquet_and_arrays(tmp_path):
    df = pd.DataFrame({"a": np.arange(6.0), "b": np.arange(6.0) ** 2, "s": list("abcdef")})
    df.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    for src in (tmp_path / "d.tsv", tmp_path / "d.parquet", df):
        ds = load_data(src)
        assert ds.columns == ["a", "b"]
        np.testing.assert_allclose(ds.values, df[["a", "b"]].to_numpy())
    ds = load_data(np.arange(10.0))
    assert ds.values.shape == (10, 1)


def test_standardisation_and_hash():
    x = np.random.default_rng(0).normal(5, 3, size=(50, 2))
    ds = load_data(x)
    np.testing.assert_allclose(ds.standardized.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.standardized.std(axis=0, ddof=1), 1)
    assert ds.sha256 == load_data(x.copy()).sha256
    assert ds.sha256 != load_data(x + 1e-9).sha256


def test_shipped_datasets():
    g = load_dataset("galaxies")
    assert g.shape == (82, 1) and g["velocity"].min() == 9172
    assert load_dataset("faithful").shape == (272, 2)
    assert dataset_path("iris").name == "iris.csv"
    with pytest.raises(InputError, match="unknown data set"):
        load_dataset("nothing")
