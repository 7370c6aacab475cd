"""notebooks/inspect_samplers.ipynb runs top to bottom in a fresh kernel, as CI runs it.

Small settings through the notebook's environment variables (two 60-step toy runs, a 40-step
digits run, 50 sampler steps), trained in a temporary directory; the kernel is ipykernel's
python3 (the spec installed into the environment with ipykernel; its `python` is this
interpreter). Any cell error fails the test with the cell and its traceback.
"""

import os
import subprocess

import nbformat
from nbclient import NotebookClient

from tests.helpers import ROOT

NOTEBOOK = os.path.join(ROOT, "notebooks", "inspect_samplers.ipynb")
SMALL = {"MSGM_NOTEBOOK_TOY_STEPS": "60", "MSGM_NOTEBOOK_DIGITS_STEPS": "40",
         "MSGM_NOTEBOOK_SAMPLER_STEPS": "50"}


def _repository_files():
  """git's list of untracked, ignored and changed paths, less Python's byte-code caches."""
  out = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT,
                       capture_output=True, text=True, check=True).stdout
  return sorted(line for line in out.splitlines() if "__pycache__" not in line)


def test_notebook_is_committed_without_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes_top_to_bottom(tmp_path, monkeypatch):
  for name in ("MSGM_TOY_WORKDIR", "MSGM_TOY_MSGM_WORKDIR", "MSGM_DIGITS_WORKDIR", "XLA_FLAGS"):
    monkeypatch.delenv(name, raising=False)  # conftest's 8 fake devices are for this process
  for name, value in {**SMALL, "TMPDIR": str(tmp_path), "JAX_PLATFORMS": "cpu",
                      "PYTHONPATH": ROOT}.items():
    monkeypatch.setenv(name, value)
  before = _repository_files()
  nb = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(nb, timeout=900, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  assert sum("image/png" in o.get("data", {}) for o in outputs) == 4  # every figure drawn
  # Library notices a reader cannot act on (Orbax's "Given directory is read only" on each
  # read-only open, absl WARNING lines) are silenced at the source.
  text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  noise = [line for line in text.splitlines()
           if "orbax" in line.lower() or "read only" in line or "WARNING" in line]
  assert not noise, noise[:5]
  runs = {p.name for p in tmp_path.glob("msgm_notebook_*/*") if (p / "checkpoints").is_dir()}
  assert runs == {"toy_unseen", "toy_msgm", "digits"}  # trained in the temporary directory
  assert _repository_files() == before  # nothing written into the repository
