"""Benchmarks, run by hand (never in CI). Each prints its figures beside a baseline measured in the same run."""
