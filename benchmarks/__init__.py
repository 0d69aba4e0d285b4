"""Rerunnable benchmarks (``autodata bench saturation|overhead|compute``); see README.md here.

Numbers live here, never in timed tests. Each benchmark prints one table and writes
``benchmarks/results/<name>.json`` whose key ``ratio`` holds its headline ratio.
"""
