"""Benchmarks that print tables. `python bench/run.py` runs the whole set and prints one table."""
