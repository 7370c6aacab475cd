"""The score-SDE maths, as pure functions under plain `jit` (no devices, no loop, no config).

  sde.py            forward SDEs (VE, VP, sub-VP), their marginals, discretisations, reverse SDE
  losses.py         denoising score matching: continuous DSM, discrete DDPM and SMLD
  sampling.py       predictor-corrector and probability-flow samplers (Song et al. 2021)
  fast_sampling.py  few-step PF-ODE solvers: DDIM, DPM-Solver++(2M), Heun on a Karras grid
  ode.py            an adaptive RK45 (Dormand-Prince) that runs inside the compiled graph
  likelihood.py     exact log-likelihoods / bits per dim through the probability-flow ODE
  exact.py          closed-form perturbed densities and scores of Gaussian mixtures (test truth)

Imports only msgm_jax.registry.
"""
