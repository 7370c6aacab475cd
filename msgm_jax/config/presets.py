"""Small config presets that `configs/*.py` compose into one ml_collections ConfigDict.

Field names follow score_sde where one exists (training.batch_size, model.ema_rate, ...), so
users of score_sde configs find them where they expect. Library code never receives the whole
ConfigDict: `msgm_jax/training/loop.py` and friends translate sections into typed arguments.
"""

import ml_collections

from msgm_jax.data import compositional


def base() -> ml_collections.ConfigDict:
  """Everything a run needs, with score_sde's CIFAR-10 defaults (docs/method.md section 5)."""
  config = ml_collections.ConfigDict()
  config.seed = 42
  # --mode=import: a score_sde_pytorch .pth checkpoint to convert (docs/import.md)
  config.import_from = ""

  config.training = training = ml_collections.ConfigDict()
  training.sde = "vesde"
  training.continuous = True
  training.reduce_mean = False
  training.likelihood_weighting = False
  training.batch_size = 128
  training.n_iters = 1300001
  training.snapshot_freq = 50000
  training.snapshot_freq_for_preemption = 10000
  training.keep_every = 50000  # checkpoints kept forever every this many steps (0: none)
  training.max_to_keep = 2  # most recent checkpoints kept besides the keepers
  training.log_freq = 50
  training.eval_freq = 100
  training.snapshot_sampling = True
  training.steps_per_call = 1  # train steps fused into one compiled call
  training.num_devices = 0  # local devices to use (0: all)
  # MSGM regimes (docs/method.md section 1): standard | unseen | msgm.
  training.regime = "standard"
  training.init_from = ""  # fine-tuning: a workdir or checkpoint directory of a Standard run
  training.restart_step = True  # on init_from: restart the step counter (and so the warmup)

  config.msgm = msgm = ml_collections.ConfigDict()
  # The default is the variant that removed NSFG generation on the toy (docs/toy2d_report.md):
  # Obtuse with the repelling sign, hinged with margin 1. The release's forms are options.
  msgm.variant = "obtuse"  # orthogonal | obtuse | redirect (msgm_jax/method/moderation.py)
  msgm.form = "elementwise"  # orthogonal: elementwise (release) | inner | cosine
  msgm.sign = "repel"  # obtuse: release (the authors' code) | repel
  msgm.hinge = True  # obtuse: relu(... + margin) so the term is bounded below by 0
  msgm.margin = 1.0  # obtuse with hinge: ask for <s std, -z> / D <= -margin
  # "release": the authors' loss forms (elementwise; release sign, no hinge), overriding the
  # four fields above; "redirect": the image setting (variant, alpha, period, window and
  # references; moderation.PRESETS); "": use the fields as set. MSGMConfig.from_config.
  msgm.preset = ""
  msgm.alpha = 0.01
  msgm.period = 4
  # The NSFG batch's noise window: t drawn where std_min <= std(t) <= std_max (0: no end).
  msgm.std_min = 0.0
  msgm.std_max = 0.0
  # redirect: its SFG references, 0 the step's SFG batch, n > 0 the first n SFG examples,
  # -1 all of them.
  msgm.num_refs = 0
  msgm.nsfg_batch_size = 0  # 0: same as training.batch_size

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.method = "pc"  # pc | ode | ddim | dpm_solver | heun (README: Sampling)
  sampling.predictor = "reverse_diffusion"
  sampling.corrector = "langevin"
  sampling.n_steps_each = 1
  sampling.noise_removal = True
  sampling.probability_flow = False
  sampling.snr = 0.16
  sampling.batch_size = 64  # samples drawn at each snapshot
  sampling.eps = 1e-3  # end time of sampling (docs/method.md section 2: 1e-3 VP/sub-VP, 1e-5 VE)
  sampling.ode_tol = 1e-5  # rtol = atol of the probability-flow ODE sampler
  sampling.num_steps = 50  # steps of ddim / dpm_solver / heun (heun: 2 evaluations a step)
  sampling.ddim_eta = 0.0  # ddim's fresh noise per step in [0, 1] (0: deterministic, 1: DDPM's)

  config.eval = evaluate = ml_collections.ConfigDict()
  # --mode=eval: checkpoints with begin_ckpt <= step <= end_ckpt (training steps; 0/0: the
  # latest only; end 0: no upper bound). --mode=sample: step begin_ckpt, or the latest if 0.
  evaluate.begin_ckpt = 0
  evaluate.end_ckpt = 0
  evaluate.batch_size = 128  # also the batch of training's eval_loss (every training.eval_freq)
  evaluate.num_batches = 4  # eval mode's DSM loss: this many batches per subset
  evaluate.enable_bpd = True
  evaluate.bpd_dataset = "test"  # the split of every evaluation (DSM loss and likelihood)
  evaluate.bpd_num_examples = 256  # likelihoods: the first this many of each of SFG and NSFG
  # likelihood divergence: hutchinson_rademacher | hutchinson_gaussian | exact (costly for images)
  evaluate.divergence = "hutchinson_rademacher"
  evaluate.enable_loss = True  # eval mode's DSM loss on the SFG and NSFG test data
  evaluate.num_samples = 256  # --mode=sample, and eval mode's sample metrics
  # Sample metrics of eval mode (msgm_jax/evaluation/sample_metrics.py): 'auto' computes one when its
  # weights are set (else one line says it is skipped), 'on' requires them, 'off' never.
  evaluate.nsfg_rate = "auto"  # needs classifier_weights (nsfg_detector=factored: detector_)
  evaluate.fd_classifier = "auto"  # needs classifier_weights
  evaluate.fid = "auto"  # needs inception_weights
  # A dataset classifier's workdir (configs/classifier/<dataset>.py): NSFG rate, fd_classifier.
  evaluate.classifier_weights = ""
  # Who decides NSFG for nsfg_rate: 'classifier' (the dataset classifier's argmax in
  # data.nsfg_classes) or 'factored' (colour digits: colour by rule, shape by the digits
  # classifier at detector_weights, a configs/classifier/digits.py workdir;
  # msgm_jax/evaluation/classifier/factors.py). fd_classifier always uses classifier_weights' features.
  evaluate.nsfg_detector = "classifier"
  evaluate.detector_weights = ""
  # Feature statistics (python -m msgm_jax.evaluation.metrics.stats; README "FID and feature statistics"):
  # pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or an .npz of the same names), and
  # where the cached statistics go ('' -> <data cache dir>/feature_stats).
  evaluate.inception_weights = ""
  evaluate.fid_split = "train"  # FID's reference statistics (fd_classifier: bpd_dataset)
  evaluate.stats_dir = ""

  # Training-free moderation (msgm_jax/method/training_free.py) in sample and eval mode: '' (none),
  # 'orthogonal' or 'obtuse', steering the score away from the first num_refs NSFG training
  # examples at every sampler step (and in eval's likelihoods and losses).
  config.adjust = adjust = ml_collections.ConfigDict()
  adjust.method = ""
  adjust.num_refs = 64
  adjust.strength = 1.0  # obtuse: 1 reflects the pull towards NSFG data (keeps the norm)
  adjust.bandwidth = 0.0  # the NSFG region's width (0: median nearest-neighbour distance)
  adjust.max_noise = 1.0  # act only up to about this noise std (data units)

  # Zero-shot tasks on the eval.bpd_dataset split, eval.batch_size images per call:
  # --mode=inpaint (msgm_jax/zero_shot/inpaint.py) and --mode=reconstruct (msgm_jax/zero_shot/reconstruct.py).
  config.inpaint = inpaint = ml_collections.ConfigDict()
  inpaint.mask = "right_half"  # right_half | top_half | center_band | a .npy / .png file
  inpaint.num_images = 64  # of each of SFG and NSFG (0: all)
  config.reconstruct = reconstruct = ml_collections.ConfigDict()
  reconstruct.perturb_t = 0.02  # the latent perturbed as the marginal at this t (0: none)
  reconstruct.num_images = 64  # of each of SFG and NSFG (0: all)

  config.data = data = ml_collections.ConfigDict()
  data.dataset = "CIFAR10"
  data.data_dir = ""  # TFDS data_dir ("" -> TFDS default, ~/tensorflow_datasets)
  data.image_size = 32
  data.num_channels = 3
  data.random_flip = True
  data.centered = False
  data.uniform_dequantization = False
  data.nsfg_classes = (1, 5)  # CIFAR-10: automobile and dog (docs/method.md section 7)
  data.nsfg_attribute = ""  # CelebA: e.g. "Bangs"

  config.model = model = ml_collections.ConfigDict()
  model.name = "ncsnpp"
  model.sigma_min = 0.01
  model.sigma_max = 50.0
  model.num_scales = 1000
  model.beta_min = 0.1
  model.beta_max = 20.0
  model.dropout = 0.1
  model.ema_rate = 0.9999
  model.dtype = "float32"  # compute dtype: float32 | bfloat16 (params and loss stay float32)
  model.conv_impl = "auto"  # auto | xla | hybrid | im2col (see docs/performance.md)

  config.optim = optim = ml_collections.ConfigDict()
  optim.optimizer = "Adam"
  optim.lr = 2e-4
  optim.beta1 = 0.9
  optim.beta2 = 0.999
  optim.eps = 1e-8
  optim.weight_decay = 0.0
  optim.warmup = 5000
  optim.grad_clip = 1.0
  return config


def vp(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """VP SDE with centred data, as score_sde's VP configs."""
  config.training.sde = "vpsde"
  config.training.reduce_mean = True
  config.data.centered = True
  config.sampling.predictor = "euler_maruyama"
  config.sampling.corrector = "none"
  config.sampling.eps = 1e-3
  return config


def subvp(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  vp(config)
  config.training.sde = "subvpsde"
  return config


def ve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  config.training.sde = "vesde"
  config.training.reduce_mean = False
  config.data.centered = False
  config.sampling.predictor = "reverse_diffusion"
  config.sampling.corrector = "langevin"
  config.sampling.eps = 1e-5
  return config


def toy2d(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The 2-D toy of the paper's first figure: SFG blobs at (-2,-2) and (2,2), NSFG at (0,0).

  A VE SDE whose sigma_max (10) exceeds the data's diameter, a small MLP, short training.
  """
  data = config.data
  data.dataset = "toy2d"
  data.nsfg_classes = (2,)
  data.random_flip = False
  data.centered = False
  data.image_size = 0
  data.num_channels = 0
  config.model.sigma_min = 0.01
  config.model.sigma_max = 10.0
  config.model.num_scales = 500  # sampler steps (continuous training does not use N)
  config.model.dropout = 0.0
  config.model.ema_rate = 0.999
  training = config.training
  training.batch_size = 256
  training.n_iters = 3000
  training.snapshot_freq = 3000
  training.snapshot_freq_for_preemption = 1000
  training.keep_every = 0
  training.log_freq = 100
  training.eval_freq = 1000
  training.steps_per_call = 1  # XLA:CPU: unrolled calls compile in O(k)
  training.reduce_mean = True
  config.optim.lr = 1e-3
  config.optim.warmup = 100
  config.sampling.batch_size = 2000
  config.eval.batch_size = 2000
  # A short run needs a stronger, every-step moderation than the release's CIFAR-10 setting
  # (alpha 0.01, period 4 over 660k steps): see the sweep in docs/toy2d_report.md.
  config.msgm.alpha = 0.5
  config.msgm.period = 1
  config.msgm.nsfg_batch_size = 128
  config.adjust.strength = 3.0
  config.adjust.bandwidth = 1.0
  return config


def msgm(config: ml_collections.ConfigDict, variant: str = "obtuse",
         **options) -> ml_collections.ConfigDict:
  """The MSGM regime; alpha 0.01 and moderation every 4th step as the release (CIFAR-10).

  options: msgm.form / msgm.sign / msgm.hinge / msgm.margin / msgm.alpha / msgm.period.
  """
  config.training.regime = "msgm"
  config.msgm.variant = variant
  for key, value in options.items():
    config.msgm[key] = value
  return config


def cifar10_msgm(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """CIFAR-10 with NSFG = automobile (1) and dog (5): 400 SFG + 400 NSFG per step, 660k steps
  (docs/method.md sections 5 and 7; the release's paired loader hard-codes another split)."""
  config.data.dataset = "CIFAR10"
  config.data.nsfg_classes = (1, 5)
  config.training.batch_size = 400
  config.msgm.nsfg_batch_size = 400
  config.training.n_iters = 660001
  return msgm(config)


def celeba64(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """CelebA: centre crop 140, resize 64; NSFG = the Bangs attribute; VE sigma_max 90."""
  config.data.dataset = "CELEBA"
  config.data.image_size = 64
  config.data.random_flip = True
  config.data.nsfg_classes = ()
  config.data.nsfg_attribute = "Bangs"
  config.model.sigma_max = 90.0
  return config


def stl10_64(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """STL-10 labelled train + test images at 64x64; NSFG = airplane (0); random flips."""
  config.data.dataset = "STL10"
  config.data.image_size = 64
  config.data.random_flip = True
  config.data.nsfg_classes = (0,)
  return config


def mnist(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """MNIST 28x28, no flips (digits are not mirror-symmetric); NSFG digit 1 by default."""
  data = config.data
  data.dataset = "MNIST"
  data.image_size = 28
  data.num_channels = 1
  data.random_flip = False
  data.nsfg_classes = (1,)
  return config


def digits(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The real 8x8 digits inside scikit-learn with a tiny U-Net budget (2 CPU cores)."""
  data = config.data
  data.dataset = "digits"
  data.image_size = 8
  data.num_channels = 1
  data.random_flip = False
  data.nsfg_classes = (0,)  # for the unseen and msgm regimes
  config.model.attn_resolutions = (4,)
  config.model.ema_rate = 0.999
  training = config.training
  training.batch_size = 64
  training.n_iters = 4000
  training.snapshot_freq = 1000
  training.snapshot_freq_for_preemption = 500
  training.keep_every = 0
  training.log_freq = 50
  training.eval_freq = 500
  training.steps_per_call = 1
  config.optim.lr = 1e-3
  config.optim.warmup = 200
  config.sampling.batch_size = 64
  # Eval on 2 CPU cores: each likelihood batch is an RK45 solve of ~1 min; 128 SFG examples
  # give bits/dim to +- 0.03, and the ~30 NSFG test digits fill one batch of 64.
  config.eval.batch_size = 64
  config.eval.bpd_num_examples = 128
  return config


def colour_digits(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The digits in 7 colours (msgm_jax/data/compositional.py): 8x8x3, NSFG = one colour per
  digit (digit d in colour d mod 7), with the digits' tiny U-Net budget."""
  digits(config)
  config.data.dataset = "colour_digits"
  config.data.num_channels = 3
  config.data.nsfg_classes = compositional.NSFG_COMBOS
  return config


def digits_report(config: ml_collections.ConfigDict, rows: str,
                  report: str = "report") -> ml_collections.ConfigDict:
  """The digits reproduction (msgm_jax/experiments/digits.py; docs/digits_report.md): NSFG digit 9,
  the one an Unseen model still draws (0, 1, 6 and 8 it does not: the report says how this was
  measured); eval.num_samples samples per row, judged by the digits classifier."""
  config.data.nsfg_classes = (9,)
  config.training.eval_freq = 0  # eval mode measures each row at the end
  config.eval.num_samples = 1000
  config.sampling.batch_size = 500
  config.eval.fid = "off"  # Inception features of 8x8 digits mean nothing
  config.msgm.alpha = 0.5
  config.msgm.period = 1
  return digits_experiment(config, rows, report)


def compositional_report(config: ml_collections.ConfigDict, rows: str,
                         report: str = "report") -> ml_collections.ConfigDict:
  """The compositional report (issue 15 phase 2; docs/compositional_report.md) on the colour
  digits (the default NSFG set: digit d in colour d mod 7), judged by the factored detector,
  sized for about an hour on 2 shared cores: 2000 training steps per row (Unseen's NSFG rate
  is flat from 2000 to 12000 steps), 500 fine-tuning steps, 500 samples of 500 sampler steps
  per row, bpd of 32 test images per subset."""
  config.training.n_iters = 2000
  config.training.eval_freq = 0  # eval mode measures each row at the end
  config.model.num_scales = 500  # sampler steps (continuous training does not use N)
  config.eval.num_samples = 500
  config.sampling.batch_size = 500
  config.eval.bpd_num_examples = 32
  config.eval.batch_size = 32
  config.eval.fid = "off"  # Inception features of 8x8 images mean nothing
  config.eval.nsfg_detector = "factored"  # 11x lower floor than the 70-class classifier's
  config.msgm.alpha = 0.5
  config.msgm.period = 1
  config = digits_experiment(config, rows, report)
  config.experiment.finetune_steps = 500
  config.experiment.title = "Colour digits"
  config.experiment.classifier = "colour_digits"  # fd_classifier's features
  return config


def digits_experiment(config: ml_collections.ConfigDict, rows: str,
                      report: str = "report") -> ml_collections.ConfigDict:
  """The experiment section of the digits reproduction (msgm_jax/experiments/digits.py)."""
  config.experiment = exp = ml_collections.ConfigDict()
  exp.name = "digits"
  exp.rows = rows
  exp.report = report  # <report>.json, .md, .png (another name keeps another report apart)
  exp.finetune_steps = 1000  # fine-tuned rows (finetuned_*: from the standard row)
  exp.grid = 64  # samples per row in the figure
  exp.title = "Digits"  # the report's heading
  exp.classifier = "digits"  # classifier/presets.py BY_NAME: trained unless eval.classifier_weights
  # Zero-shot tasks per row ('' none, or 'inpaint', 'reconstruct', 'inpaint,reconstruct'):
  # the inpaint and reconstruct sections' settings, judged by the classifier.
  exp.zero_shot = ""
  # The row the factored detector's paired analysis compares every row with ('' or a row not
  # in experiment.rows: none).
  exp.reference = "unseen"
  return config


def toy2d_experiment(config: ml_collections.ConfigDict, rows: str) -> ml_collections.ConfigDict:
  """The experiment section of the toy reproduction (msgm_jax/experiments/toy.py): rows to run and how
  to measure them."""
  config.experiment = exp = ml_collections.ConfigDict()
  exp.name = "toy2d"
  exp.rows = rows
  exp.report = "report"
  exp.num_samples = 4000
  exp.seed = 0
  exp.disc_radius = 1.0
  exp.finetune_steps = 1000  # fine-tuned rows (finetuned_*: from the standard row)
  return config
