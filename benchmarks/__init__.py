"""The benchmark suite: `python -m benchmarks.run` measures every section and rewrites
docs/BENCHMARKS.md. A section is a module `bench_<name>.py` with TITLE, ABOUT and run(ctx) -> rows.

The two paths the benchmarks and the tests share live here (no heavy imports)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the project checkout: app.py, checkpoints/, docs/
REAL_DATA = Path(os.environ.get("GZ_REAL_DATA", ROOT.parent / "shared" / "data" / "galaxy-zoo-2014"))
