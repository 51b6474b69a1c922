"""Benchmarks (not tests): the project's trainer against a bare diffusers + peft loop.

Results: docs/benchmarks.md.
"""
