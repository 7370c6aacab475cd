"""Classifier of the colour digits' 70 (digit, colour) combinations, 8x8x3 (embedded).

The project's generic classifier path on this dataset: its argmax-in-data.nsfg_classes NSFG
rule and penultimate features serve the evaluation's nsfg_rate and fd_classifier like for any
class dataset. The premise measurement and the compositional report decide NSFG with the
factors read separately instead (msgm_jax/evaluation/classifier/factors.py: colour by rule, shape by
configs/classifier/digits.py; eval.nsfg_detector=factored).
  python -m msgm_jax.main --config=configs/classifier/colour_digits.py --workdir=runs/classifier_cd
"""

from msgm_jax.evaluation.classifier import presets as classifier_presets


def get_config():
  return classifier_presets.colour_digits()
