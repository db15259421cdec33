"""Benchmarks (not tests): see docs/benchmarks.md for the commands and the figures."""
