"""Measuring: the benchmark command and profiling.

  bench.py          `python -m msgm_jax.tools.bench`: speed of training and sampling, as JSON
  measure.py        compile time, XLA FLOPs, wall time and hardware peaks of compiled functions
  opprofile.py      per-operation times of a compiled step from the JAX profiler
"""
