"""The per-group summary table: one row per group, from each fit's summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bayesmix import format as F
from bayesmix.io import atomic_write, write_text

PARQUET_NAME = "summary.parquet"
CSV_NAME = "summary.csv"
# the columns, in order, with what each holds (also written into the Parquet metadata)
COLUMNS = {
    "group": "the value of the --by column",
    "n": "rows in the group",
    "k_mode": "posterior mode of K+ (occupied clusters)",
    "p_mode": "P(K+ = mode | data)",
    "set_90": "smallest set of K+ values with posterior probability >= 0.9",
    "k_mean": "posterior mean of K+",
    "light": "diagnostics light of the fit's report: green, amber, red (grey: not computed)",
    "max_rhat": "largest R-hat over the monitored quantities",
    "min_ess": "smallest ESS (bulk or tail) over the monitored quantities",
    "warnings": "number of diagnostic warnings in the group's summary.json",
    "engine": "the engine that sampled the group",
    "seconds": "fit time (run.json total_s); of the earlier run for a group skipped on resume",
    "attempts": "tries it took (2: its worker died once); 0 for a group skipped on resume",
    "seed": "the group's seed (from the run seed and the group key)",
    "error": "why the group has no fit (empty when it has one)",
    "dir": "the group's output directory, relative to the run directory",
    "k_pmf": "posterior pmf of K+ as JSON {k: p}",
}


def fit_row(key: str, dir_name: str, summary: dict, seconds: float | None, attempts: int) -> dict:
    """The row of a finished group, from its summary.json contents."""
    from bayesmix.notebook import diagnostics_light

    nc, diag = summary["n_clusters"], summary["diagnostics"]
    pmf = {str(k): float(p) for k, p in nc["pmf"].items()}
    ess = [v for v in (diag.get("min_ess_bulk"), diag.get("min_ess_tail")) if v is not None]
    return _row(
        key,
        dir_name,
        n=int(summary["data"]["n_obs"]),
        k_mode=int(nc["mode"]),
        p_mode=pmf.get(str(nc["mode"]), float("nan")),
        set_90=F.integer_set(nc["credible_set_90"]),
        k_mean=float(nc["mean"]),
        light=diagnostics_light(summary)[0],
        max_rhat=_float(diag.get("max_r_hat")),
        min_ess=min(ess) if ess else float("nan"),
        warnings=len(diag.get("warnings", [])),
        engine=str(summary.get("engine_label") or summary.get("engine")),
        seconds=_float(seconds),
        attempts=attempts,
        seed=int(summary["seed"]),
        k_pmf=json.dumps(pmf),
    )


def error_row(
    key: str, dir_name: str, n: int | None, seed: int, message: str, attempts: int
) -> dict:
    """The row of a group without a fit: its data were bad, its fit failed or its worker died."""
    return _row(key, dir_name, n=n, seed=seed, error=message, attempts=attempts)


def _row(key: str, dir_name: str, **values) -> dict:
    row = {c: None for c in COLUMNS} | values
    row["group"], row["dir"] = key, f"groups/{dir_name}"
    row["error"] = row["error"] or ""
    return row


def _float(x) -> float:
    return float("nan") if x is None else float(x)


def summary_frame(rows: list[dict]) -> pd.DataFrame:
    """The table, in the order of ``rows``, with stable dtypes (nullable ints)."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in ("n", "k_mode", "warnings", "attempts", "seed"):
        frame[c] = frame[c].astype("Int64")
    for c in ("p_mode", "k_mean", "max_rhat", "min_ess", "seconds"):
        frame[c] = frame[c].astype("float64")
    for c in ("group", "set_90", "light", "engine", "error", "dir", "k_pmf"):
        frame[c] = frame[c].astype("string")
    return frame


def write_summary(frame: pd.DataFrame, out: Path, meta: dict) -> tuple[Path, Path]:
    """summary.parquet (``meta``, the column docs in its schema metadata) and summary.csv,
    each written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {
        b"bayesmix": json.dumps(meta, default=str).encode(),
        b"bayesmix.columns": json.dumps(COLUMNS).encode(),
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    pq_path = atomic_write(out / PARQUET_NAME, lambda p: pq.write_table(table, p))
    csv_path = write_text(out / CSV_NAME, frame.to_csv(index=False))
    return pq_path, csv_path


def read_summary(out: Path) -> pd.DataFrame:
    """summary.parquet of a fit-many directory."""
    return pd.read_parquet(out / PARQUET_NAME)


def uncertainty_order(frame: pd.DataFrame) -> list[int]:
    """Row positions of the fitted groups, most uncertain first: smallest P(mode) first, by
    group key on ties (a stable order)."""
    pos = [i for i, e in enumerate(frame["error"]) if e == ""]
    return sorted(pos, key=lambda i: (float(frame["p_mode"].iat[i]), str(frame["group"].iat[i])))
