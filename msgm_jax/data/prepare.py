"""Prepares a TFDS dataset in ArrayRecord format (run once, on a machine with network).

  python -m msgm_jax.data.prepare --dataset=cifar10 --data_dir=/path/to/tensorflow_datasets

Accepts the project's dataset spellings (CIFAR10, CELEBA, STL10, MNIST) or TFDS names.
Training reads the result with `tfds.data_source(..., download=False)`, which needs ArrayRecord.
"""

import argparse

from msgm_jax.data.datasets import get_dataset


def prepare(dataset: str, data_dir: str = "") -> str:
  """Downloads and prepares `dataset` under data_dir ('' -> TFDS default); returns its path."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  d = get_dataset(dataset)
  if not d.tfds_name:
    raise SystemExit(f"dataset {d.name!r} is embedded; nothing to prepare")
  builder = tfds.builder(d.tfds_name, data_dir=data_dir or None)
  builder.download_and_prepare(file_format="array_record")
  return str(builder.data_path)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", required=True, help="e.g. cifar10, mnist, celeb_a, stl10")
  parser.add_argument("--data_dir", default="", help="TFDS data_dir ('' -> TFDS default)")
  args = parser.parse_args(argv)
  print(f"prepared {args.dataset} at {prepare(args.dataset, args.data_dir)}")


if __name__ == "__main__":
  main()
