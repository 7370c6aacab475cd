"""The multi-device and multi-process runtime: the only modules that know about devices.

  parallel.py       data parallelism over the devices of all processes (pmap lives here only)
  distributed.py    jax.distributed start-up, barriers, agreement and a coordinated stop
  workdir_lock.py   one run per workdir: a lock file held for the life of a writing mode
  preemption.py     SIGTERM / SIGUSR1 / SIGUSR2 as a preemption notice: all processes save at one step

Imports data/ (its host-side streams) and nothing above.
"""
