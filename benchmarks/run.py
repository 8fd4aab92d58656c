"""The one command: run the benchmark sections and rewrite docs/BENCHMARKS.md.

    python -m benchmarks.run                          # everything, about 45 min on 2 CPU cores
    python -m benchmarks.run --only decode,train      # some sections; the others stay as they were
    python -m benchmarks.run --quick                  # smoke run: every section shrunk to seconds

Full-run budget on a 2-core CPU: decode ~2 min, train ~3, quality ~30 (2 + 5 + 10 minutes of
gz train and 10 of the blog loop), inference ~3, explain ~7 (the trust checks over 100 held-out galaxies), memory ~2; gpu ~1 on a CUDA machine
(skipped elsewhere). A section is a module `benchmarks/bench_<name>.py` with TITLE, ABOUT and
run(ctx) -> list[Row]; `bench_dashboard.py`, when present, runs as the last section.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import shlex
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from . import REAL_DATA, ROOT, report
from .common import Context, Skip, machine

SECTIONS = ["decode", "train", "quality", "inference", "explain", "memory", "gpu", "uncertainty", "scale",
            "dashboard"]


def available() -> list[str]:
    return [name for name in SECTIONS if importlib.util.find_spec(f"benchmarks.bench_{name}")]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("--only", type=lambda s: s.split(","), default=None,
                   help=f"comma-separated sections (default: all of {','.join(available())})")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: seconds per section, figures meaningless")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md",
                   help="markdown file to rewrite")
    p.add_argument("--data", type=Path, default=REAL_DATA,
                   help="Kaggle-layout folder with labels and images_test_rev1/ (default: GZ_REAL_DATA "
                        "or ../shared/data/galaxy-zoo-2014)")
    p.add_argument("--images", type=int, default=None,
                   help="use only the first N labelled and N unlabelled images "
                        "(default: all; 512 with --quick)")
    p.add_argument("--repeats", type=int, default=None,
                   help="side-by-side repeats per comparison (default 5; 1 with --quick)")
    return p


def run_section(name: str, ctx: Context) -> report.Result:
    module = importlib.import_module(f"benchmarks.bench_{name}")
    print(f"== {module.TITLE}", file=sys.stderr, flush=True)
    result = report.Result(name, module.TITLE, module.ABOUT)
    start = time.perf_counter()
    try:
        result.rows = module.run(ctx)
    except Skip as e:
        result.skipped = str(e)
    except Exception as e:  # a failing section must not lose the figures of the others
        traceback.print_exc()
        result.error = f"{type(e).__name__}: {e}"[:500]
    result.seconds = time.perf_counter() - start
    print(result.error or result.skipped or report.table(result.rows), f"({result.seconds:.0f} s)\n",
          file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = get_args_parser().parse_args(argv)
    names = args.only or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(available())}")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    stamp = f"Measured {when} on {machine()}, with `{shlex.join(['python', '-m', 'benchmarks.run', *argv])}`"
    if args.quick:
        stamp += " (quick mode: smoke figures, not results)"
    with tempfile.TemporaryDirectory(prefix="gzbench-") as scratch:
        ctx = Context.create(args.data, args.quick, args.repeats or (1 if args.quick else 5), Path(scratch),
                             args.images or (512 if args.quick else None))
        results = [run_section(name, ctx) for name in names]
    print(f"wrote {report.write(args.out, results, SECTIONS, stamp)}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
