"""Judging trained runs: eval mode, sample mode, sample metrics, classifiers and metrics.

  eval_mode.py      eval mode: held-out losses and likelihoods on SFG and NSFG data, sample metrics
  sample_mode.py    sample mode: samples of one checkpoint's EMA parameters, resumably
  samples.py        eval mode's sample draws, kept per batch so a preempted eval resumes
  sample_metrics.py NSFG rate, fd_classifier and FID of samples
  record.py         eval mode's per-checkpoint record (JSON, TensorBoard scalars, printed line)
  classifier/       dataset classifiers that decide NSFG (train, evaluate, load)
  metrics/          Frechet distances, the FID Inception, feature statistics, rates
"""
