"""msgm_jax: MSGM (Moderating the Generalization of Score-based Generative Model) in JAX/Flax.

The parts, from the bottom up; a module imports only its own part and the parts above it in
this list (tests/test_architecture.py fails on an import that points down the list, or on a
circle; docs/architecture.md says more):

  registry.py, errors.py  one registry per extension point; how an error reads in one line
  lazy.py        a package's public names imported on first use
  diffusion/     the score-SDE maths: SDEs, DSM losses, PC / ODE / few-step samplers, likelihood
  models/        score networks (DDPM, NCSN++, DDPM++, MLP);  data/  datasets, streams, masks
  method/        MSGM: moderation terms, training-free moderation, one optimisation step
  runtime/       devices and processes: data parallelism, jax.distributed, the workdir lock
  config/        presets, config files, start-up checks, builders of typed objects
  training/      the training loop, checkpoints, logs, restoring a trained run
  evaluation/    eval and sample mode, NSFG rate / FID / fd_classifier, dataset classifiers
  zero_shot/     inpaint and reconstruct mode
  trained.py     a trained run as Python objects (notebooks)
  experiments/   the toy, digits and colour-digits reports and their diagnostics
  cli/, tools/   the command line's modes and messages; the benchmark and profiling
  main.py        the one entrypoint: parses flags and dispatches
  configs/       the shipped config files (`--config=configs/<file>.py`)
"""

__version__ = "0.1.0"
