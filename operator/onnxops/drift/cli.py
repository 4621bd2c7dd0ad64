"""`onnxops drift compare`: offline drift comparison of two CSV files.

Exit codes: 0 = no drift, 1 = drift, 2 = usage error (bad arguments, unreadable file, bad CSV).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from onnxops.drift.compare import METHODS, Report, Thresholds, compare_frames

EXIT_OK, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit code 2 with our message, no SystemExit surprises
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="onnxops drift", description="Drift statistics between two CSV files.")
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser(
        "compare",
        help="compare the columns of a current CSV with a reference CSV",
        description=(
            "Compare every column of --current with the same column of --reference. Numeric columns get "
            "psi, js (on the reference's deciles), ks and wasserstein; other columns are categorical and get "
            "psi, js and chi2. Empty fields are missing values. "
            "Exit code: 0 no drift, 1 drift, 2 usage error."
        ),
    )
    c.add_argument("--reference", required=True, type=Path, help="CSV with a header row (training data)")
    c.add_argument("--current", required=True, type=Path, help="CSV with the same columns (live data)")
    c.add_argument(
        "--method",
        action="append",
        choices=METHODS,
        help="statistic to compute (repeatable); default: every one that applies",
    )
    c.add_argument("--json", action="store_true", help="print the stable JSON report")
    d = Thresholds()
    c.add_argument("--psi-threshold", type=float, default=d.psi, help=f"PSI above this drifts ({d.psi})")
    c.add_argument("--js-threshold", type=float, default=d.js, help=f"JS distance above this drifts ({d.js})")
    c.add_argument(
        "--ks-alpha",
        type=float,
        default=d.ks_alpha,
        help=f"KS p-value below alpha/number-of-features drifts (Bonferroni; {d.ks_alpha})",
    )
    c.add_argument(
        "--wasserstein-threshold",
        type=float,
        default=d.wasserstein,
        help=f"normalised Wasserstein above this drifts ({d.wasserstein})",
    )
    c.add_argument(
        "--chi2-alpha",
        type=float,
        default=d.chi2_alpha,
        help=f"chi2 p-value below alpha/number-of-features drifts (Bonferroni; {d.chi2_alpha})",
    )
    return p


def read_csv(path: Path) -> dict[str, list[str | None]]:
    """Columns of a CSV with a header; empty fields become None. Raises UsageError on bad files."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if not rows or not any(h.strip() for h in rows[0]):
        raise UsageError(f"{path}: no header row")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise UsageError(f"{path}: duplicate column names in the header")
    cols: dict[str, list[str | None]] = {h: [] for h in header}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise UsageError(f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}")
        for h, v in zip(header, row, strict=True):
            cols[h].append(v if v.strip() != "" else None)
    return cols


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"


def render_table(report: Report) -> str:
    head = [
        "feature",
        "kind",
        "n_ref",
        "n_cur",
        "missing",
        "psi",
        "js",
        "ks_stat",
        "ks_p",
        "wass",
        "chi2_p",
        "drift",
    ]
    rows = [head]
    for f in report.features.values():
        rows.append(
            [
                f.name,
                f.kind,
                str(f.n_reference),
                str(f.n_current),
                _fmt(f.missing_share, 3),
                _fmt(f.psi),
                _fmt(f.js),
                _fmt(f.ks_statistic),
                _fmt(f.ks_pvalue),
                _fmt(f.wasserstein),
                _fmt(f.chi2_pvalue),
                "DRIFT" if f.drift else "ok",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    notes = [f"note: {f.name}: {f.note}" for f in report.features.values() if f.note]
    verdict = "verdict: DRIFT" if report.drift else "verdict: no drift"
    return "\n".join([*lines, *notes, verdict])


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command != "compare":
            raise UsageError("expected a subcommand: compare")
        th = Thresholds(
            args.psi_threshold, args.js_threshold, args.ks_alpha, args.wasserstein_threshold, args.chi2_alpha
        )
        ref, cur = read_csv(args.reference), read_csv(args.current)
        try:
            report = compare_frames(ref, cur, args.method, th)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    except UsageError as exc:
        print(f"onnxops drift: error: {exc}", file=sys.stderr)
        print(
            "usage: onnxops drift compare --reference REF.csv --current CUR.csv "
            "[--method psi|js|ks|wasserstein|chi2] [--json] [thresholds]",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_json(), indent=2, allow_nan=False))
    else:
        print(render_table(report))
    return EXIT_DRIFT if report.drift else EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
