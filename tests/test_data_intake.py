"""Data intake of files as people write them: R row names, text columns, other delimiters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmix.data import dataset_path, load_data
from bayesmix.errors import InputError

XY = [(1.5, 2.5), (3.0, 4.0), (5.25, 1.0), (2.0, 2.0), (7.0, 3.5), (1.0, 9.0)]
ROW_NAMES_NOTE = (
    "dropped the unnamed first column (row names, as written by R's write.csv); "
    "the row labels in assignments.csv come from it"
)
CARS = ["Mazda RX4", "Datsun 710", "Valiant", "Duster 360", "Merc 240D", "Fiat 128"]


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def plain_csv(tmp_path):
    return write(tmp_path, "plain.csv", "x,y\n" + "".join(f"{x},{y}\n" for x, y in XY))


def test_r_write_csv_row_numbers_are_dropped(tmp_path):
    # exactly what R's write.csv(df) writes: quoted header with "" first, quoted row names
    text = '"","x","y"\n' + "".join(f'"{i}",{x},{y}\n' for i, (x, y) in enumerate(XY, 1))
    ds = load_data(write(tmp_path, "r.csv", text))
    plain = load_data(plain_csv(tmp_path))
    assert ds.n_features == 2
    assert ds.columns == ["x", "y"]
    np.testing.assert_array_equal(ds.values, plain.values)
    assert ds.sha256 == plain.sha256
    assert ds.notes == [ROW_NAMES_NOTE]
    assert ds.describe()["notes"] == [ROW_NAMES_NOTE]
    assert list(ds.row_labels) == [1, 2, 3, 4, 5, 6]
    assert plain.notes == []


def test_r_row_names_that_are_strings_become_row_labels(tmp_path):
    text = '"","mpg","hp"\n' + "".join(
        f'"{name}",{x},{y}\n' for name, (x, y) in zip(CARS, XY, strict=True)
    )
    ds = load_data(write(tmp_path, "cars.csv", text))
    assert ds.columns == ["mpg", "hp"]
    assert list(ds.row_labels) == CARS
    assert ds.notes == [ROW_NAMES_NOTE]
    np.testing.assert_array_equal(ds.values, np.array(XY))


def test_row_names_survive_dropna_and_name_the_bad_row(tmp_path):
    rows = [f'"{name}",{x},{y}' for name, (x, y) in zip(CARS, XY, strict=True)]
    rows[2] = '"Valiant",,1'
    rows.append('"Hornet",4,4')
    p = write(tmp_path, "cars.csv", '"","mpg","hp"\n' + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"row 3 \('Valiant'\), column 'mpg' is nan"):
        load_data(p)
    ds = load_data(p, dropna=True)
    assert list(ds.row_labels) == [n for n in CARS if n != "Valiant"] + ["Hornet"]


def test_pandas_to_csv_index_is_dropped(tmp_path):
    p = tmp_path / "pd.csv"
    pd.DataFrame(XY, columns=["x", "y"]).to_csv(p)  # header ",x,y", index 0..5
    ds = load_data(p)
    assert ds.columns == ["x", "y"]
    assert list(ds.row_labels) == [0, 1, 2, 3, 4, 5]
    assert ds.notes == [ROW_NAMES_NOTE.replace("R's write.csv", "pandas' to_csv")]


def test_unnamed_first_column_with_repeated_values_is_dropped_without_labels(tmp_path):
    text = ",x,y\n" + "".join(f"{i % 2},{x},{y}\n" for i, (x, y) in enumerate(XY))
    ds = load_data(write(tmp_path, "dup.csv", text))
    assert ds.columns == ["x", "y"]
    assert list(ds.row_labels) == [1, 2, 3, 4, 5, 6]
    assert ds.notes == [
        "dropped the unnamed first column (row names, as written by R's write.csv); "
        "its values are not unique, so assignments.csv numbers the rows from 1"
    ]


def test_unnamed_first_column_is_kept_when_asked_for(tmp_path):
    text = ",x,y\n" + "".join(f"{i * i},{x},{y}\n" for i, (x, y) in enumerate(XY))
    ds = load_data(write(tmp_path, "ask.csv", text), columns=["Unnamed: 0", "x"])
    assert ds.columns == ["Unnamed: 0", "x"]
    assert ds.notes == []
    assert list(ds.row_labels) == [1, 2, 3, 4, 5, 6]


def test_r_write_table_row_names_without_header_cell(tmp_path):
    # write.table(df, sep=","): the header has no cell for the row names
    text = '"mpg","hp"\n' + "".join(
        f'"{name}",{x},{y}\n' for name, (x, y) in zip(CARS, XY, strict=True)
    )
    ds = load_data(write(tmp_path, "wt.csv", text))
    assert ds.columns == ["mpg", "hp"]
    assert list(ds.row_labels) == CARS
    assert ds.notes == [
        "dropped the first field of each data row, which has no header (row names, as "
        "written by R's write.table); the row labels in assignments.csv come from it"
    ]


def test_named_id_column_is_kept_with_a_note(tmp_path):
    text = "id,x,y\n" + "".join(f"{i},{x},{y}\n" for i, (x, y) in enumerate(XY, 1))
    ds = load_data(write(tmp_path, "id.csv", text))
    assert ds.columns == ["id", "x", "y"]
    np.testing.assert_array_equal(ds.values[:, 0], np.arange(1, 7))
    assert list(ds.row_labels) == [1, 2, 3, 4, 5, 6]
    assert ds.notes == [
        "column 'id' holds the row numbers 1..6 and is used as a feature; "
        "if it is an identifier, choose the other columns with --columns"
    ]
    assert load_data(write(tmp_path, "id.csv", text), columns=["x", "y"]).notes == []


def test_integer_column_that_is_not_the_row_numbers_gives_no_note(tmp_path):
    text = "n,x\n" + "".join(f"{i * 3},{x}\n" for i, (x, _) in enumerate(XY, 1))
    assert load_data(write(tmp_path, "n.csv", text)).notes == []


def test_skipped_non_numeric_columns_are_named():
    ds = load_data(dataset_path("iris"))
    assert ds.n_features == 4
    assert "Species" not in ds.columns
    assert ds.notes == ["skipped non-numeric column(s): Species (use --columns to choose columns)"]
    frame = pd.DataFrame({"a": np.arange(6.0) ** 2, "s": list("abcdef"), "t": [True, False] * 3})
    assert load_data(frame).notes == [
        "skipped non-numeric column(s): s, t (use --columns to choose columns)"
    ]
    assert load_data(frame, columns=["a"]).notes == []


def test_semicolon_file_with_decimal_commas(tmp_path):
    text = "x;y\n" + "".join(f"{x};{y}\n".replace(".", ",") for x, y in XY)
    ds = load_data(write(tmp_path, "eu.csv", text))
    assert ds.columns == ["x", "y"]
    np.testing.assert_array_equal(ds.values, load_data(plain_csv(tmp_path)).values)
    assert ds.notes == [
        "read as a semicolon-separated file with decimal commas (first line: 'x;y')"
    ]


def test_r_write_csv2_file(tmp_path):
    # write.csv2(df): ';' between fields, ',' as the decimal mark, quoted row names
    text = '"";"x";"y"\n' + "".join(
        f'"{i}";{x};{y}\n'.replace(".", ",") for i, (x, y) in enumerate(XY, 1)
    )
    ds = load_data(write(tmp_path, "r2.csv", text))
    assert ds.columns == ["x", "y"]
    np.testing.assert_array_equal(ds.values, np.array(XY))
    assert ds.notes == [
        'read as a semicolon-separated file with decimal commas (first line: \'"";"x";"y"\')',
        ROW_NAMES_NOTE,
    ]


def test_semicolon_file_with_decimal_points(tmp_path):
    text = "x;y;label\n" + "".join(f"{x};{y};r{x}\n" for x, y in XY)
    ds = load_data(write(tmp_path, "semi.csv", text))
    np.testing.assert_array_equal(ds.values, np.array(XY))
    assert ds.notes == [
        "read as a semicolon-separated file with decimal points (first line: 'x;y;label')",
        "skipped non-numeric column(s): label (use --columns to choose columns)",
    ]


def test_semicolon_file_without_numbers_is_an_error_with_a_hint(tmp_path):
    p = write(tmp_path, "words.csv", "a;b\n" + "".join(f"x{i};y{i}\n" for i in range(6)))
    with pytest.raises(
        InputError,
        match=r"words\.csv: looks like a semicolon-separated file \(first line: 'a;b'\); "
        r"no column is numeric",
    ):
        load_data(p)


def test_tab_separated_file_named_csv(tmp_path):
    text = "x\ty\n" + "".join(f"{x}\t{y}\n" for x, y in XY)
    ds = load_data(write(tmp_path, "tabs.csv", text))
    assert ds.columns == ["x", "y"]
    np.testing.assert_array_equal(ds.values, np.array(XY))
    assert ds.notes == ["read as a tab-separated file (first line: 'x\\ty')"]


def test_comma_separated_file_named_tsv(tmp_path):
    ds = load_data(write(tmp_path, "d.tsv", plain_csv(tmp_path).read_text()))
    assert ds.columns == ["x", "y"]
    assert ds.notes == ["read as a comma-separated file (first line: 'x,y')"]


def test_trailing_delimiter_is_ignored(tmp_path):
    text = "x,y\n" + "".join(f"{x},{y},\n" for x, y in XY)
    ds = load_data(write(tmp_path, "trail.csv", text))
    np.testing.assert_array_equal(ds.values, np.array(XY))
    assert list(ds.row_labels) == [1, 2, 3, 4, 5, 6]
    assert ds.notes == ["ignored the empty last field of every data row (a trailing delimiter)"]


def test_one_column_with_decimal_commas_is_an_error(tmp_path):
    p = write(tmp_path, "one.csv", "x\n" + "".join(f"{x}\n".replace(".", ",") for x, _ in XY))
    with pytest.raises(
        InputError,
        match=r"one\.csv: the header has 1 field but the data rows have 2 "
        r"\(first lines: 'x', '1,5'\); if the numbers have decimal commas",
    ):
        load_data(p)


def test_rows_with_several_extra_fields_are_an_error(tmp_path):
    p = write(tmp_path, "wide.csv", "x\n" + "".join(f"{x},{y},1\n" for x, y in XY))
    with pytest.raises(InputError, match=r"wide\.csv: the data rows have 2 more fields"):
        load_data(p)
