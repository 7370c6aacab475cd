"""The command line: `python -m msgm_jax.main` (or `msgm-jax`) and its modes.

  modes.py          one function per --mode, in a registry (imports every part it dispatches to)
  terminal.py       flag parsing, usage, one-line errors, the lines a Ctrl-C / SIGTERM ends with
"""
