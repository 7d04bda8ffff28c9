"""Benchmarks (`make bench`): outside the test suite, which only runs them at a tiny size
(tests/tools/test_bench_smoke.py) so they cannot rot."""
