"""The experiments and their reports: each compares regimes side by side.

  regimes.py        rows of an experiment (regimes, fine-tunes), training them, their table
  toy.py            the 2-D toy reproduction (the paper's first figure); toy_metrics.py its metrics
  digits.py         the digits and colour-digits reports (NSFG rate, fd, bpd, zero-shot rows)
  colour_rates.py   NSFG rates of colour-digit samples against the detector's floor
  commitment.py     when a sampler path decides what it draws (the commitment curve)
  score_probes.py   per-noise-level probes of a learned score on SFG and NSFG images
  sampler_tradeoff.py  the samplers' NSFG rate, fd_classifier and time against steps (table, plot)
"""
