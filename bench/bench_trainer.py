"""Trainer overhead over a bare ``fit`` + ``skl2onnx`` on the same data, and its peak memory.

Each measurement runs in a fresh child process (clean imports, clean peak-RSS):

- bare:    read the file with pandas -> float32 matrix -> fit on the first 80% of rows -> convert_sklearn
- trainer: ``onnxops.trainer.__main__.main([...])`` on the same file (sha256, validation, seeded split,
           fit, metrics, gates, export, ONNX Runtime parity, profile, atomic bundle, termination message)

overhead = trainer wall time - bare wall time (both include reading the file and the imports they need
after start-up); peak memory = peak RSS during the run minus RSS before it, compared with the in-memory
size of the data set (pandas frame, deep).

    python bench/bench_trainer.py [--rows 1000000] [--features 10] [--repeat 3] [--write]
    python bench/bench_trainer.py --boosting [--rows 1000000] [--trees 50] [--repeat 3] [--write]

``--boosting`` measures XGBClassifier and LGBMClassifier instead (the bare side converts with onnxmltools'
``convert_xgboost`` / ``convert_lightgbm``, the libraries' own way to ONNX; both sides get the same
``n_jobs``) and writes its own section of the results file, leaving the scikit-learn section as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "trainer.md"
MODULES = {
    "LogisticRegression": "sklearn.linear_model",
    "RandomForestClassifier": "sklearn.ensemble",
    "HistGradientBoostingClassifier": "sklearn.ensemble",
    "XGBClassifier": "xgboost",
    "LGBMClassifier": "lightgbm",
}
BOOSTING_SECTION = "## XGBoost and LightGBM"
NOTES = (
    "Noise: other jobs shared the 2 cores during these runs (the same bare LightGBM fit took 3.0 s an"
    "d 23.4 s), so single ratios mean little; the medians are what was measured. Where the trainer's "
    "time goes (one cProfile of the XGBoost run, 1M rows, same settings): fit 15.5 s (the same work a"
    "s bare), ONNX Runtime 6.1 s (the profile's pass over the 800k training rows to record the ONNX m"
    "odel's own prediction distribution ~5 s, parity on the 200k held-out rows ~1 s: a 50-tree ensemb"
    "le evaluated in ONNX), the export with the converter registration ~1 s, split + metrics ~1.5 s, "
    "the bundle 0.04 s: 27.9 s in all against a bare 14-19 s. Memory stays under 2x the frame (the tr"
    "ainer frees the table before fitting, bare keeps the pandas frame and its float32 copy)."
)


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so that the peak covers only the measured run."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    try:
        return _status_kib("VmHWM") * 1024
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args: argparse.Namespace) -> None:
    # Imported before the baseline in both modes, so neither pays (time or memory) for imports:
    # the comparison is about the work. The trainer's own imports are measured apart (import_s).
    import importlib

    import pandas as pd
    import pyarrow.parquet  # noqa: F401
    import skl2onnx  # noqa: F401

    est_cls = getattr(importlib.import_module(MODULES[args.estimator]), args.estimator)
    t_imp = time.perf_counter()
    if args.child == "trainer":
        import onnxruntime  # noqa: F401

        import onnxops.trainer.run  # noqa: F401
    import_s = time.perf_counter() - t_imp
    params = json.loads(args.params)

    def bare(path: str, fmt: str) -> int:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        df = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
        names = [c for c in df.columns if c != "target"]
        X = df[names].to_numpy(dtype=np.float32)
        y = df["target"].to_numpy()
        del df
        n = int(len(y) * 0.8)
        model = est_cls(**params).fit(X[:n], y[:n])
        if args.estimator in ("XGBClassifier", "LGBMClassifier"):
            import onnxmltools
            from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat

            convert = (
                onnxmltools.convert_xgboost
                if args.estimator == "XGBClassifier"
                else onnxmltools.convert_lightgbm
            )
            onx = convert(
                model,
                initial_types=[("input", MLFloat([None, X.shape[1]]))],
                **({"zipmap": False} if args.estimator == "LGBMClassifier" else {}),
            )
            return len(onx.SerializeToString())
        onx = convert_sklearn(
            model,
            initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
            options={id(model): {"zipmap": False}},
        )
        return len(onx.SerializeToString())

    def trainer(path: str, fmt: str, run_id: str) -> int:
        from onnxops.trainer.__main__ import main

        spec = {
            "model": "bench",
            "dataset": {"uri": f"file://{path}", "format": fmt, "target": "target"},
            "estimator": {"className": args.estimator, "params": params},
        }
        out = tempfile.mkdtemp(prefix="out-", dir=args.workdir)
        term = Path(out) / "term.json"
        rc = main(
            [
                "--spec-json",
                json.dumps(spec),
                "--run-id",
                run_id,
                "--output-uri",
                f"file://{out}",
                "--termination-log",
                str(term),
            ]
        )
        if rc != 0:
            raise SystemExit(f"trainer exit {rc}: {term.read_text()}")
        size: int = json.loads(term.read_text())["artifact"]["sizeBytes"]
        return size

    # warm-up on the small file: lazy imports and first-call costs are paid before the measurement
    bare(args.warmup, "csv") if args.child == "bare" else trainer(args.warmup, "csv", "warmup")
    import gc

    gc.collect()
    reset_ok = reset_peak()
    before = rss_bytes()
    t0 = time.perf_counter()
    size = bare(args.data, args.fmt) if args.child == "bare" else trainer(args.data, args.fmt, "r")
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "rc": 0,
                "wall_s": wall,
                "peak_delta": peak_rss_bytes() - before,
                "onnx_bytes": size,
                "import_s": import_s,
                "peak_reset": reset_ok,
            }
        )
    )


def make_data(rows: int, features: int, fmt: str, d: Path) -> tuple[Path, int]:
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features))
    w = rng.normal(size=features)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    df["target"] = (X @ w + rng.normal(scale=0.5, size=rows) > 0).astype(np.int64)
    path = d / f"synthetic-{rows}.{fmt}"
    df.to_parquet(path, index=False) if fmt == "parquet" else df.to_csv(path, index=False)
    return path, int(df.memory_usage(deep=True).sum())


def iris_data(d: Path) -> tuple[Path, int]:
    from sklearn.datasets import load_iris

    df = load_iris(as_frame=True).frame
    path = d / "iris.csv"
    df.to_csv(path, index=False)
    return path, int(df.memory_usage(deep=True).sum())


def measure(mode: str, data: Path, fmt: str, estimator: str, params: dict[str, Any]) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--data",
        str(data),
        "--fmt",
        fmt,
        "--estimator",
        estimator,
        "--params",
        json.dumps(params),
        "--warmup",
        str(data.parent / "iris.csv"),
        "--workdir",
        str(data.parent),
    ]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "operator")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"{mode} failed: {proc.stderr[-2000:]}")
    res: dict[str, Any] = json.loads(line[-1])
    if res["rc"] != 0:
        raise RuntimeError(f"{mode}: trainer exit {res['rc']}: {proc.stderr[-2000:]}")
    return res


def scenario(
    name: str, data: Path, frame_bytes: int, fmt: str, estimator: str, params: dict[str, Any], repeat: int
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "trainer": []}
    for _ in range(repeat):
        for mode in ("bare", "trainer"):
            runs[mode].append(measure(mode, data, fmt, estimator, params))
    med = {m: statistics.median(r["wall_s"] for r in rs) for m, rs in runs.items()}
    best = {m: min(r["wall_s"] for r in rs) for m, rs in runs.items()}
    mem = {m: max(r["peak_delta"] for r in rs) for m, rs in runs.items()}
    row = {
        "scenario": name,
        "estimator": estimator,
        "file_bytes": data.stat().st_size,
        "frame_bytes": frame_bytes,
        "bare_s": med["bare"],
        "trainer_s": med["trainer"],
        "overhead_s": med["trainer"] - med["bare"],
        "overhead_min_s": best["trainer"] - best["bare"],
        "bare_peak": mem["bare"],
        "trainer_peak": mem["trainer"],
        "walls": {m: [round(r["wall_s"], 3) for r in rs] for m, rs in runs.items()},
    }
    print(json.dumps(row), flush=True)
    return row


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# Trainer overhead and memory",
        "",
        f"Command: `python bench/bench_trainer.py --rows {args.rows} --features {args.features} "
        f"--repeat {args.repeat} --write`",
        "",
        f"Machine: {os.cpu_count()} CPUs (shared, noisy), Python {platform.python_version()}, "
        f"{platform.machine()}. Wall times are medians of {args.repeat} runs (iris: at least 5), each in a "
        "fresh process after one warm-up run on iris (lazy imports, first-call costs); "
        "peak memory is the highest peak-RSS increase over the RSS before the run.",
        "",
        "| data set | estimator | file | frame in memory | bare fit+skl2onnx | trainer | overhead (median) "
        "| overhead (best runs) | bare peak mem | trainer peak mem | trainer peak / frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['estimator']} | {mib(r['file_bytes'])} | {mib(r['frame_bytes'])} "
            f"| {r['bare_s']:.2f} s | {r['trainer_s']:.2f} s | {r['overhead_s']:+.2f} s "
            f"| {r['overhead_min_s']:+.2f} s "
            f"| {mib(r['bare_peak'])} | {mib(r['trainer_peak'])} "
            f"| {r['trainer_peak'] / r['frame_bytes']:.2f}x |"
        )
    big = [r for r in rows if "synthetic" in r["scenario"]]
    worst_overhead = max(r["overhead_s"] for r in rows)
    worst_ratio = max(r["trainer_peak"] / r["frame_bytes"] for r in big) if big else float("nan")
    lines += [
        "",
        f"Goals: overhead under 2 s — worst median here {worst_overhead:+.2f} s "
        f"({'met' if worst_overhead < 2 else 'NOT met'}); peak memory under 2x the data set (the frame in "
        f"memory) on the large data set — worst {worst_ratio:.2f}x "
        f"({'met' if worst_ratio < 2 else 'NOT met'}). "
        "The small data sets' ratio is meaningless (a 6 KiB frame against ~1 MiB of allocator noise).",
        "",
        "What the trainer adds over the bare fit (a cProfile of the 1M-row parquet run on this machine): "
        "the stratified split (~0.3-0.6 s, scikit-learn's StratifiedShuffleSplit), held-out metrics "
        "(~0.2-0.4 s: ROC AUC, log loss, F1 on 200k rows), ONNX Runtime parity on the held-out rows "
        "(~0.1-0.3 s), the profile (~0.2-0.4 s: one sort per feature), sha256 of the file (~0.1 s for "
        "parquet, ~0.4 s for the 189 MiB CSV); the bundle write is ~0.02 s. Memory: the trainer reads "
        "parquet one column at a time and CSV in 200k-row chunks, builds one float32 matrix and frees the "
        "table before the split, so its peak stays below the bare pandas read + fit (`pd.read_parquet` "
        "alone peaks near 3x the frame, `pd.read_csv` near 4x).",
    ]
    lines += ["", "Individual wall times (s):", ""]
    lines += [
        f"- {r['scenario']} {r['estimator']}: bare {r['walls']['bare']}, trainer {r['walls']['trainer']}"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def boosting_report(rows: list[dict[str, Any]], args: argparse.Namespace, threads: int) -> str:
    lines = [
        BOOSTING_SECTION,
        "",
        f"Command: `python bench/bench_trainer.py --boosting --rows {args.rows} --features {args.features} "
        f"--trees {args.trees} --repeat {args.repeat} --write`",
        "",
        f"Machine: {os.cpu_count()} CPUs (shared with other work, noisy), "
        f"Python {platform.python_version()}, {platform.machine()}. Both sides: n_estimators={args.trees}, "
        f"n_jobs={threads}, random_state=0, "
        "otherwise the libraries' defaults. Bare = pandas read -> float32 -> fit on 80% -> onnxmltools "
        "convert_xgboost / convert_lightgbm; trainer = the whole training run (split, metrics, ONNX inside "
        "the skl2onnx Pipeline, ONNX Runtime parity on the held-out rows, profile, bundle). Medians of "
        f"{args.repeat} runs, each in a fresh process after a warm-up on iris.",
        "",
        "| data set | estimator | frame in memory | bare fit+convert | trainer | overhead (median) "
        "| trainer / bare | bare peak mem | trainer peak mem | trainer peak / frame |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['estimator']} | {mib(r['frame_bytes'])} | {r['bare_s']:.2f} s "
            f"| {r['trainer_s']:.2f} s | {r['overhead_s']:+.2f} s | {r['trainer_s'] / r['bare_s']:.2f}x "
            f"| {mib(r['bare_peak'])} | {mib(r['trainer_peak'])} "
            f"| {r['trainer_peak'] / r['frame_bytes']:.2f}x |"
        )
    lines += ["", NOTES, "", "Individual wall times (s):", ""]
    lines += [f"- {r['estimator']}: bare {r['walls']['bare']}, trainer {r['walls']['trainer']}" for r in rows]
    return "\n".join(lines) + "\n"


def boosting_main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE.parent / "operator"))
    from onnxops.trainer.cpus import available_cpus

    threads = available_cpus()
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        d = Path(tmp)
        iris_data(d)
        big, big_bytes = make_data(args.rows, args.features, "parquet", d)
        name = f"synthetic ({args.rows:,} rows x {args.features}, parquet)"
        rows = [
            scenario(
                name,
                big,
                big_bytes,
                "parquet",
                est,
                {
                    "n_estimators": args.trees,
                    "n_jobs": threads,
                    "random_state": 0,
                    **({"verbose": -1} if est == "LGBMClassifier" else {}),
                },
                args.repeat,
            )
            for est in ("XGBClassifier", "LGBMClassifier")
        ]
    text = boosting_report(rows, args, threads)
    print(text)
    if args.write:
        old = RESULTS.read_text() if RESULTS.exists() else ""
        kept = old.split(BOOSTING_SECTION)[0].rstrip("\n")
        RESULTS.write_text((kept + "\n\n" if kept else "") + text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(HERE.parent)}")
    ap.add_argument("--child", choices=["bare", "trainer"])
    ap.add_argument("--data")
    ap.add_argument("--fmt", default="parquet")
    ap.add_argument("--estimator", default="LogisticRegression")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--warmup", help="small CSV run once before the measurement (child)")
    ap.add_argument("--workdir", help="where the child writes its bundles")
    ap.add_argument("--boosting", action="store_true", help="XGBoost and LightGBM instead")
    ap.add_argument("--trees", type=int, default=50, help="--boosting: n_estimators")
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.boosting:
        boosting_main(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        d = Path(tmp)
        iris, iris_bytes = iris_data(d)
        big, big_bytes = make_data(args.rows, args.features, "parquet", d)
        big_csv, _ = make_data(args.rows, args.features, "csv", d)
        rows = [
            scenario(
                "iris (150 rows, csv)",
                iris,
                iris_bytes,
                "csv",
                "LogisticRegression",
                {"max_iter": 500},
                max(args.repeat, 5),
            ),
            scenario(
                "iris (150 rows, csv)",
                iris,
                iris_bytes,
                "csv",
                "RandomForestClassifier",
                {"n_estimators": 50, "random_state": 0},
                max(args.repeat, 5),
            ),
            scenario(
                f"synthetic ({args.rows:,} rows x {args.features}, parquet)",
                big,
                big_bytes,
                "parquet",
                "LogisticRegression",
                {"max_iter": 100},
                args.repeat,
            ),
            scenario(
                f"synthetic ({args.rows:,} rows x {args.features}, csv)",
                big_csv,
                big_bytes,
                "csv",
                "LogisticRegression",
                {"max_iter": 100},
                args.repeat,
            ),
        ]
    text = report(rows, args)
    print(text)
    if args.write:  # keep the XGBoost/LightGBM section (written by --boosting)
        old = RESULTS.read_text() if RESULTS.exists() else ""
        boosting = old[old.index(BOOSTING_SECTION) :] if BOOSTING_SECTION in old else ""
        RESULTS.write_text(text + ("\n" + boosting if boosting else ""))


if __name__ == "__main__":
    main()
