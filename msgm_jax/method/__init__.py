"""The MSGM method as pure functions: what it adds to score matching and how one step optimises it.

  moderation.py     the moderation terms on perturbed NSFG samples (Orthogonal, Obtuse, redirect,
                    ...) and the combined MSGM objective
  training_free.py  moderation at sampling time: score transformers built from NSFG references
  step.py           one optimisation step: DSM (+ moderation), gradients, Adam with warmup, EMA
  optim.py          score_sde's optimiser: global-norm clipping, Adam, linear warmup, EMA decay

Imports diffusion/ (and registry); never devices, the loop or the command line.
"""
