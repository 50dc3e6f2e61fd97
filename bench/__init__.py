"""Benchmarks (not tests): `uv run python -m bench.bench_core`."""
