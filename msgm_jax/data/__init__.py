"""The input pipeline: host-side numpy, deterministic and resumable, sharded per process.

Typical use (msgm_jax/training/loop.py):
  spec = DataSpec.from_config(config.data)
  sfg, nsfg = make_train_streams(spec, regime="msgm", batch_size=B, nsfg_batch_size=B_u,
                                 seed=config.seed, start_position=step,
                                 process_index=jax.process_index(),
                                 process_count=jax.process_count())
  it = sfg.iterator()            # it.position == batches consumed; store it in checkpoints
  batch = next(it)               # {'image': float32 [B/P, *data_shape(spec)], 'label': int32}
"""

from msgm_jax.data.datasets import DATASETS, DatasetDef, get_dataset
from msgm_jax.data.mixture import TOY2D_MIXTURE, TOY2D_NSFG_COMPONENTS, GaussianMixture
from msgm_jax.data.pipeline import (DataSpec, SubsetSource, data_shape, eval_batches,
                                    get_inverse_scaler, get_scaler, make_eval_source,
                                    make_train_streams, model_inputs)
from msgm_jax.data.sources import ArraySource, DatasetNotPrepared, Source, TfdsSource
from msgm_jax.data.split import REGIMES, split_indices
from msgm_jax.data.stream import BatchIterator, IndexStream, MixtureStream, Stream
from msgm_jax.data.transforms import dequantize

__all__ = [
    "ArraySource", "BatchIterator", "DATASETS", "DataSpec", "DatasetDef", "DatasetNotPrepared",
    "GaussianMixture", "IndexStream", "MixtureStream", "REGIMES", "Source", "Stream",
    "SubsetSource", "TOY2D_MIXTURE", "TOY2D_NSFG_COMPONENTS", "TfdsSource", "data_shape",
    "dequantize", "eval_batches", "get_dataset", "get_inverse_scaler", "get_scaler",
    "make_eval_source", "make_train_streams", "model_inputs", "split_indices",
]
