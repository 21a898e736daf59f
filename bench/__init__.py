"""Benchmarks of the listener against direct Kubernetes access, on the local sandbox.

    .venv/bin/python -m bench [--quick] [--only throughput,latency,...] [--out DIR]

See docs/benchmarks.md for what each figure measures and the latest results.
"""
