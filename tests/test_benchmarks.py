"""The benchmark scripts still run and still agree with the registry, at a size that takes seconds.

The figures they print are for people; these tests only keep the scripts from rotting as the
registry grows (a metric with no hand-written counterpart once made the report benchmark fail).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_report_benchmark_agrees_with_hand_written_sql_and_duckdb(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench = _load("report_bench")
    code = bench.main(["--victims", "3000", "--suspects", "900", "--cases", "600", "--repeat", "1",
                       "--engines", "sqlite"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    assert "registry = hand-written SQL = DuckDB, every cell" in out


@pytest.mark.slow
def test_linkage_evaluation_runs_and_prints_every_goal(capsys: pytest.CaptureFixture[str]) -> None:
    _load("linkage_eval").main(["--skip-febrl", "--scale", "3000"])
    out = capsys.readouterr().out
    for goal in ("goal cluster F1", "goal person count", "goal scale"):
        assert goal in out, out[-2000:]
    assert "linked from 0.95 only" in out  # the stricter threshold's figures, for comparison


@pytest.mark.slow
def test_screening_evaluation_runs_and_prints_every_goal() -> None:
    # In a fresh interpreter, as a person runs it: the script forks its screening workers, and a
    # fork is only safe from a process without other threads, while this one holds DuckDB's, the
    # Spark gateway's and test servers' (a forked worker once died of a segmentation fault here).
    run = subprocess.run(  # noqa: S603 - this interpreter and a script of the repository
        [sys.executable, str(BENCHMARKS / "screening_eval.py"), "--posts", "800", "--workers", "2"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = run.stdout
    assert run.returncode == 0, (out + run.stderr)[-2000:]
    assert "flagging (test part" in out and "entities (test part)" in out and "networks (all" in out
    assert "goal >= 2,000 on 2 cores" in out, out[-2000:]


@pytest.mark.slow
@pytest.mark.web
def test_records_load_benchmark_covers_reads_lists_searches_and_writes() -> None:
    # In a fresh interpreter, as a person runs it (it starts server processes and its own database);
    # tiny: one backend, two concurrencies, half a second a row, a one-second open loop at 20 req/s.
    run = subprocess.run(  # noqa: S603 - this interpreter and a script of the repository
        [sys.executable, str(BENCHMARKS / "api_records_load.py"), "--seconds", "0.5", "--clients", "1,8",
         "--open-seconds", "1", "--rate", "20", "--drain", "5"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = run.stdout
    assert run.returncode == 0, (out + run.stderr)[-3000:]
    for workload in ("read", "list", "search", "write", "mix"):
        assert any(line.split()[:3] == ["sqlite", workload, "8"] for line in out.splitlines()), workload
    assert "floor      no-op" in out and "in-process reference" in out
    assert "errors in all rows: 0; audit chains intact: yes" in out, out[-3000:]
