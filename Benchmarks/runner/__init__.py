"""The comparison runner of Benchmarks/: see compare.py and README.md."""
