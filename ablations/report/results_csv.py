"""results.csv and bench.csv: one line per row, for spreadsheets and pandas."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ablations.analysis.costs import row_flops
from ablations.rows import PER_EXAMPLE, BenchRow, Row
from ablations.rundir import result_rows, write_text


def write_csv(rows: list[Row] | list[BenchRow], path: Path, per_arm: dict[str, dict] | None = None) -> None:
    """One line per row (its JSON keys, config flattened); per-example arrays stay in results.jsonl.
    Training rows get `train_flops` (derived from tokens when not measured, flagged
    `train_flops_derived`) and, on the rows that are results (a ladder's largest rung), the
    `per_arm` columns."""
    flat_rows, final = [], {id(r) for r in result_rows(rows)} if per_arm is not None else set()
    for r in rows:
        flat = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.to_json().items()
                if k != "config" and k not in PER_EXAMPLE}
        if per_arm is not None:
            measured = r.train_flops is not None
            flat.update(train_flops=r.train_flops if measured else row_flops(r), train_flops_derived=not measured)
            flat.update(per_arm.get(r.arm, {}) if id(r) in final else {})
        flat.update({f"config.{k}": v for k, v in (r.config if isinstance(r, Row) else {}).items()})
        flat_rows.append(flat)
    keys: list[str] = []
    for f in flat_rows:
        keys += [k for k in f if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(flat_rows)
    write_text(path, buf.getvalue())
