"""Model presets: functions that set `config.model` fields with score_sde's names and values.

Compose them in configs/*.py after the SDE preset, e.g.
  config = models.presets.ddpmpp(presets.vp(presets.base())).
Values mirror score_sde's configs (vp/ddpm/cifar10_continuous.py, vp/cifar10_ddpmpp_continuous.py,
ve/cifar10_ncsnpp_continuous.py and their *_deep_* variants).
"""

import ml_collections

Config = ml_collections.ConfigDict


def _unet(config: Config, name: str) -> Config:
  """Fields every CIFAR-10 U-Net of score_sde shares."""
  model = config.model
  model.name = name
  model.normalization = "GroupNorm"
  model.nonlinearity = "swish"
  model.nf = 128
  model.ch_mult = (1, 2, 2, 2)
  model.attn_resolutions = (16,)
  model.resamp_with_conv = True
  model.conditional = True
  return config


def ddpm(config: Config) -> Config:
  """The DDPM U-Net of Ho et al. (35.7M parameters at 32x32x3)."""
  _unet(config, "ddpm")
  config.model.num_res_blocks = 2
  config.model.scale_by_sigma = False
  config.model.ema_rate = 0.9999
  return config


def _ncsnpp_family(config: Config) -> Config:
  _unet(config, "ncsnpp")
  model = config.model
  model.num_res_blocks = 4
  model.fir_kernel = (1, 3, 3, 1)
  model.skip_rescale = True
  model.resblock_type = "biggan"
  model.progressive = "none"
  model.progressive_combine = "sum"
  model.attention_type = "ddpm"
  model.init_scale = 0.0
  model.fourier_scale = 16
  model.conv_size = 3
  return config


def ncsnpp(config: Config) -> Config:
  """NCSN++ (VE): FIR resampling, residual input pyramid, Fourier features of sigma."""
  _ncsnpp_family(config).model.update(
      dict(scale_by_sigma=True, ema_rate=0.999, fir=True, progressive_input="residual",
           embedding_type="fourier"))
  return config


def ddpmpp(config: Config) -> Config:
  """DDPM++ (VP / sub-VP): the NCSN++ family with positional embedding and no FIR."""
  _ncsnpp_family(config).model.update(
      dict(scale_by_sigma=False, ema_rate=0.9999, fir=False, progressive_input="none",
           embedding_type="positional"))
  return config


def deep(config: Config) -> Config:
  """The "deep" variants: 8 residual blocks per resolution, trained for 950k steps."""
  config.model.num_res_blocks = 8
  config.training.n_iters = 950001
  return config


def tiny(config: Config) -> Config:
  """A few-thousand-parameter version of whichever U-Net is set, for tests and notebooks."""
  model = config.model
  model.nf = 16
  model.ch_mult = (1, 2)
  model.num_res_blocks = 1
  model.attn_resolutions = (8,)
  model.num_groups = 4  # DDPM only (NCSN++ uses min(C // 4, 32)); 32 groups need >= 32 channels
  model.dropout = 0.0
  return config


def mlp(config: Config) -> Config:
  """The 2-D score MLP for toy data with the VE SDE (sigma labels, output divided by sigma)."""
  model = config.model
  model.name = "mlp"
  model.hidden = 128
  model.n_layers = 3
  model.embedding_type = "fourier"
  model.fourier_scale = 16
  model.scale_by_sigma = True
  return config
