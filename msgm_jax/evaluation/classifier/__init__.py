"""Dataset classifiers for the NSFG rate and a classifier feature space (issue 9, item 1).

Train and evaluate through the one entrypoint (a config with a `classifier` section):
  python -m msgm_jax.main --config=configs/classifier/<dataset>.py --workdir=<dir>
  python -m msgm_jax.main --config=configs/classifier/<dataset>.py --workdir=<dir> --mode=eval
Eval writes <dir>/classifier_eval.json: accuracy, per-class recall (CelebA: Bangs recall and
specificity) and the confusion matrix on the test split.

Public API, for the generative model's eval mode (NSFG rate, fd_classifier):

  from msgm_jax.evaluation.classifier import load_classifier
  clf = load_classifier(classifier_workdir, spec)   # spec: the generative config's DataSpec;
                                                    # ClassifierMismatch (one line naming the
                                                    # fix) for another dataset, image size or
                                                    # NSFG attribute
  x = inverse_scaler(samples)                       # float [B, H, W, C] in [0, 1]
  logits = clf.logits(clf.params, x)                # float32 [B, K]
  feats = clf.features(clf.params, x)               # float32 [B, F]: penultimate layer
  is_nsfg = clf.nsfg_decider(spec)(logits)          # bool [B]

`logits`, `features` and the decider are pure and jittable (use them inside pmapped or jitted
functions with clf.params replicated). The NSFG rule (msgm_jax/evaluation/classifier/nsfg.py): argmax in
data.nsfg_classes for class datasets; P(attribute) > 0.5 for CelebA. One class classifier
serves every choice of data.nsfg_classes (it is trained on all classes). Real test images
must go through the same [0, 1] space: data.make_eval_source gives uint8, divide by 255.
"""

from msgm_jax import lazy

# Public names, imported on first use (msgm_jax/lazy.py).
_WHERE = {
    "CLASSIFIERS": "msgm_jax.evaluation.classifier.networks",
    "Classifier": "msgm_jax.evaluation.classifier.loading",
    "ClassifierInfo": "msgm_jax.evaluation.classifier.info",
    "ClassifierMismatch": "msgm_jax.evaluation.classifier.loading",
    "ClassifierSettings": "msgm_jax.evaluation.classifier.settings",
    "NsfgRule": "msgm_jax.evaluation.classifier.nsfg",
    "is_nsfg": "msgm_jax.evaluation.classifier.nsfg",
    "load_classifier": "msgm_jax.evaluation.classifier.loading",
}
__getattr__, __all__ = lazy.exports(__name__, _WHERE)
