"""Validation studies for bayesmix: simulation-based calibration and recovery of K.

``python -m benchmarks.sbc`` and ``python -m benchmarks.recovery`` write their results to
``reports/validation/``.
"""
