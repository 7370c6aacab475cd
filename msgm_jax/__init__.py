"""msgm_jax: MSGM (Moderating the Generalization of Score-based Generative Model) in JAX/Flax."""

__version__ = "0.1.0"
