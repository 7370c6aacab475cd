"""Repair of a run's logs so they match its checkpoints: metrics.jsonl and TensorBoard events.

A run killed after its last checkpoint has logged steps that the resumed run logs again. On
resume from step S the training loop keeps only records with step <= S (`keep_steps`), so
metrics.jsonl holds each step once and TensorBoard, which merges every event file of a
directory, shows one continuous curve: the old files end at S, the resumed run's new file
starts after it. A record cut short by the kill is dropped too. Files that need no change are
not rewritten; the others are replaced atomically (write a copy, then rename).

TensorBoard event files are TFRecord files: each record is an 8-byte little-endian length, a
4-byte checksum of the length, the serialized `Event` proto and a 4-byte checksum of it.
Records are copied byte for byte, so no checksum has to be recomputed.
"""

import glob
import json
import os
import struct
from typing import Callable, Iterator, List, Tuple

StepFilter = Callable[[int], bool]
_HEADER = 12  # length (8) + its checksum (4)
_FOOTER = 4  # checksum of the data


def _replace(path: str, data: bytes) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)


def keep_jsonl(path: str, keep: StepFilter) -> int:
  """Keeps the JSON lines of `path` whose "step" passes `keep` (lines that do not parse, e.g.
  one cut short by a kill, are dropped); returns how many lines were dropped."""
  if not os.path.exists(path):
    return 0
  with open(path, "rb") as f:
    lines = f.read().splitlines(keepends=True)
  kept = []
  for line in lines:
    try:
      record = json.loads(line)
    except ValueError:
      continue
    if line.endswith(b"\n") and keep(int(record.get("step", 0))):
      kept.append(line)
  if len(kept) != len(lines):
    _replace(path, b"".join(kept))
  return len(lines) - len(kept)


def event_records(data: bytes) -> Iterator[Tuple[int, bytes]]:
  """(step, raw record bytes) for each complete record of an event file's contents; stops at a
  record cut short."""
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel
  pos = 0
  while pos + _HEADER <= len(data):
    (length,) = struct.unpack("<Q", data[pos:pos + 8])
    end = pos + _HEADER + length + _FOOTER
    if end > len(data):
      return
    try:
      event = event_pb2.Event.FromString(data[pos + _HEADER:pos + _HEADER + length])
    except Exception:  # a torn record: protobuf raises DecodeError
      return
    yield int(event.step), data[pos:end]
    pos = end


def keep_events(path: str, keep: StepFilter) -> int:
  """Keeps the records of one event file whose step passes `keep` (the file_version record,
  at step 0, always stays); returns how many records were dropped (a torn tail counts 1)."""
  with open(path, "rb") as f:
    data = f.read()
  records = list(event_records(data))
  kept: List[bytes] = [raw for i, (step, raw) in enumerate(records) if i == 0 or keep(step)]
  dropped = len(records) - len(kept)
  consumed = sum(len(raw) for _, raw in records)
  if dropped or consumed != len(data):
    _replace(path, b"".join(kept))
  return dropped + (consumed != len(data))


def keep_steps(logdir: str, keep: StepFilter) -> int:
  """Applies `keep` to <logdir>/metrics.jsonl and every <logdir>/tensorboard/events.* file;
  returns the number of records dropped."""
  dropped = keep_jsonl(os.path.join(logdir, "metrics.jsonl"), keep)
  for path in sorted(glob.glob(os.path.join(logdir, "tensorboard", "events.out.tfevents.*"))):
    if not path.endswith(".tmp"):
      dropped += keep_events(path, keep)
  return dropped
