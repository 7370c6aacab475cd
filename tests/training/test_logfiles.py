"""Log repair on resume: records after the resumed step go, torn records go, the rest stays
byte for byte; event files stay valid TFRecord files (checked by an independent reader)."""

import glob
import json
import os
import struct

import numpy as np

from msgm_jax.training import logfiles
from msgm_jax.training import writer as writer_lib


def _read_tfrecords(path):
  """(step, tag) of every scalar in an event file; asserts each record's framing and masked
  CRC-32C, as TensorBoard's reader does."""
  from tensorboardX.proto import event_pb2
  from tensorboardX.record_writer import masked_crc32c
  out = []
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    header = data[pos:pos + 8]
    (length,) = struct.unpack("<Q", header)
    assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked_crc32c(header)
    body = data[pos + 12:pos + 12 + length]
    assert struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] == \
        masked_crc32c(body)
    event = event_pb2.Event.FromString(body)
    out += [(event.step, v.tag) for v in event.summary.value]
    pos += 16 + length
  return out


def _log(logdir, steps, keep=None):
  writer = writer_lib.MetricWriter(logdir, keep=keep)
  for step in steps:
    writer.scalars(step, {"loss": float(step)})
  writer.image(steps[-1], "samples", np.zeros((4, 4, 3), np.uint8))
  writer.close()


def test_resume_keeps_each_step_once_in_both_logs(tmp_path):
  logdir = str(tmp_path)
  _log(logdir, [5, 10, 15, 20])
  events = glob.glob(os.path.join(logdir, "tensorboard", "events.*"))[0]
  with open(events, "ab") as f:  # a record cut short by a kill
    f.write(struct.pack("<Q", 100) + b"\0" * 20)
  with open(os.path.join(logdir, "metrics.jsonl"), "a") as f:
    f.write('{"step": 25, "lo')
  _log(logdir, [15, 20, 25], keep=lambda step: step <= 10)  # the resumed run, from step 10
  records = sorted(r for path in glob.glob(os.path.join(logdir, "tensorboard", "events.*"))
                   for r in _read_tfrecords(path))
  scalars = [step for step, tag in records if tag == "loss"]
  assert scalars == [5, 10, 15, 20, 25]
  assert [step for step, tag in records if tag.startswith("samples")] == [25]
  with open(os.path.join(logdir, "metrics.jsonl")) as f:
    assert [json.loads(line)["step"] for line in f] == [5, 10, 15, 20, 25]


def test_files_that_need_nothing_are_left_alone(tmp_path):
  logdir = str(tmp_path)
  _log(logdir, [5, 10])
  paths = glob.glob(os.path.join(logdir, "tensorboard", "events.*")) + \
      [os.path.join(logdir, "metrics.jsonl")]
  before = {p: (os.stat(p).st_mtime_ns, open(p, "rb").read()) for p in paths}
  assert logfiles.keep_steps(logdir, lambda step: step <= 10) == 0
  assert {p: (os.stat(p).st_mtime_ns, open(p, "rb").read()) for p in paths} == before
  assert logfiles.keep_steps(logdir, lambda step: step != 10) == 3  # 2 events, 1 line
