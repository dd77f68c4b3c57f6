"""The benchmark scripts still run against the package (they import its internals), each on a
toy size: a ratio line is printed. Their figures are measured by hand (benchmarks/README.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize("script, args, line", [
    ("bench_analysis.py", ["--model", "vit_tiny_patch16_224", "--img-size", "32", "--images", "8",
                           "--batch-size", "4", "--rounds", "1", "--spectrum-fraction", "0.5"],
     r"RATIO analysed/bare = \d+\.\d\d"),
    ("bench_train.py", ["--preset", "tiny", "--batch-size", "4", "--rounds", "1", "--objectives", "mae",
                        "--loader-steps", "2", "--workers", "0"], r"mae +RATIO step / plain forward\+backward = \d"),
    ("bench_memory.py", ["--sizes", "8", "16", "--batch-size", "8"], r"RATIO peak RSS minus rows 16/8 = \d\.\d{3}"),
    ("bench_probe.py", ["--images", "200", "--width", "8", "--classes", "3", "--rounds", "1"],
     r"RATIO vitprobe/scikit-learn = \d+\.\d\d"),
])
def test_each_benchmark_runs_and_prints_its_ratio(script, args, line):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True,
                          text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert re.search(line, done.stdout), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("script, option", [
    ("bench_analysis.py", "--rounds"), ("bench_analysis.py", "--images"), ("bench_analysis.py", "--batch-size"),
    ("bench_probe.py", "--rounds"), ("bench_probe.py", "--images"), ("bench_train.py", "--rounds"),
    ("bench_train.py", "--batch-size"), ("bench_memory.py", "--batch-size"),
])
def test_sizes_below_one_are_refused_by_the_parser(script, option):
    """Not a ratio of two empty passes, nor a traceback from deep inside."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), option, "0"], capture_output=True,
                          text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and f"argument {option}: expected a whole number >= 1, got '0'" in done.stderr


@pytest.mark.parametrize("script", ["bench_analysis.py", "bench_memory.py", "bench_probe.py", "bench_train.py"])
def test_help_gives_the_whole_description_and_each_default(script):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True,
                          text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    text = " ".join(done.stdout.split())
    doc = " ".join(((BENCHMARKS / script).read_text().split('"""')[1]).split("\n\n")[0].split())
    assert done.returncode == 0 and doc in text
    options = [o for o in re.findall(r"^  (--[a-z-]+)", done.stdout, re.M) if o != "--help"]
    assert options and text.count("(default: ") == len(options)
