"""Smoke runs of the benchmarks, so that `make bench-*` keeps working. No timing assertion."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rakuten_assets.benchmarks import ingest
from rakuten_assets_tests.support.postgres import ADMIN_URL


@pytest.mark.postgres
def test_bench_ingest_smoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_database: str
) -> None:
    result = ingest.main(
        ["--smoke", "--data-dir", str(tmp_path / "data"), "--postgres-url", ADMIN_URL]
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(
        r"bench-ingest rows=(\d+) total_s=([\d.]+) rows_per_s=([\d.]+) "
        r"baseline_rows_per_s=([\d.]+) speedup=([\d.]+)",
        last,
    )
    assert match, last
    assert int(match.group(1)) == 2000 == result["rows"]
    assert float(match.group(5)) == pytest.approx(result["speedup"], rel=1e-2)


@pytest.mark.slow
def test_bench_train_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rakuten_assets.benchmarks import train

    result = train.main(["--smoke", "--data-dir", str(tmp_path / "data")])
    output = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(
        r"bench-train rows=(\d+) wall_s=([\d.]+) peak_mb=([\d.]+) weighted_f1=([\d.]+)",
        output[-1],
    )
    assert match, output[-1]
    assert int(match.group(1)) == 3000
    assert float(match.group(4)) == pytest.approx(result["weighted_f1"], abs=1e-4)
    assert any(line.startswith("seed ") for line in output)


@pytest.mark.slow
def test_bench_drift_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rakuten_assets.benchmarks import drift

    result = drift.main(["--smoke", "--data-dir", str(tmp_path / "data")])
    output = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(r"bench-drift rows=(\d+) wall_s=([\d.]+)", output[-1])
    assert match, output[-1]
    assert int(match.group(1)) == 5000 == result["rows"]
    assert float(match.group(2)) == pytest.approx(result["wall_s"], abs=1e-3)
    assert any(line.startswith("target (100,000 rows): < 5 s: ") for line in output)
    assert result["differences"] == [], "the naive baseline must compute the same statistics"


@pytest.mark.slow
def test_bench_serve_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rakuten_assets.benchmarks import serve

    result = serve.main(["--smoke", "--data-dir", str(tmp_path / "data")])
    output = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(
        r"bench-serve c1_p50_ms=([\d.]+) c32_rps=([\d.]+) c32_p99_ms=([\d.]+) "
        r"baseline_c32_rps=([\d.]+) ratio=([\d.]+) batch_items_per_s=([\d.]+) "
        r"feedback_p50_ms=([\d.]+)",
        output[-1],
    )
    assert match, output[-1]
    assert float(match.group(2)) == pytest.approx(result["c32_rps"], abs=1e-3)
    assert float(match.group(7)) == pytest.approx(result["feedback_p50_ms"], abs=1e-3)
    assert result["feedback_p50_ms"] > 0
    assert result["c32_rps"] > 0 and result["baseline_c32_rps"] > 0
    assert result["batch_items_per_s"] > 0
    table = [line.split() for line in output if line.startswith(("litserve ", "baseline "))]
    assert len(table) == 6 and all(row[-1] == "0" for row in table), "no request may fail"
    (feedback,) = [line for line in output if line.startswith("feedback ")]
    assert feedback.endswith("errors 0"), "no correction may be refused"
