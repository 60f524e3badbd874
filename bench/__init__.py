"""Benchmarks, run as scripts (`python bench/sfu.py`); a package so that tools name them bench.*."""
