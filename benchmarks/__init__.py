"""The benchmark suite: `python -m benchmarks.run` measures every section and rewrites
docs/BENCHMARKS.md. A section is a module `bench_<name>.py` with TITLE, ABOUT and run(ctx) -> rows."""
