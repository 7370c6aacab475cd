"""The training loop and what a run writes: checkpoints, logs, progress, held-out loss.

  loop.py           one config drives one run in one workdir (resume, snapshots, eval loss)
  checkpoint.py     Orbax checkpoints <workdir>/checkpoints/<step>/ with fallback on damage
  restore.py        opening a trained run (its config, checkpoints, EMA parameters) for the modes
  heldout.py        the held-out DSM loss over local devices, per-example maps
  writer.py         TensorBoard events, metrics.jsonl, sample pictures
  logfiles.py       repairing logs so they match the checkpoints after a resume
  progress.py       the progress bar of process 0
  import_checkpoint.py  import mode: a score_sde_pytorch checkpoint -> an ordinary run (docs/import.md)
  torch_pickle.py   a torch.save reader that runs no code from the file (.pth checkpoints, weights)
"""
