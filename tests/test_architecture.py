"""The package's plan holds: imports point only down the layers of msgm_jax/__init__.py, and
no module imports itself through a circle. Read from the source (ast), every import counted,
also those inside functions: a lazy import that points up is still an upward dependency."""

import ast
import os

import pytest

from tests.helpers import ROOT

PACKAGE = os.path.join(ROOT, "msgm_jax")
# Bottom to top; a module may import its own part and the parts in earlier rows.
LAYERS = (
    ("registry", "errors", "lazy"),
    ("diffusion",),
    ("models", "data"),
    ("method",),
    ("runtime",),
    ("config",),
    ("training",),
    ("evaluation",),
    ("zero_shot",),
    ("trained",),
    ("experiments",),
    ("cli", "tools", "configs"),
    ("main",),
)
LEVEL = {part: i for i, row in enumerate(LAYERS) for part in row}


def _modules():
  out = {}
  for d, _, files in os.walk(PACKAGE):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(d, f)
        name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
  return out


MODULES = _modules()


def _imports(name, path):
  """The msgm_jax modules `name` imports (a `from package import module` names the module)."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name.startswith("msgm_jax"))
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolve against the importing module's package
        parts = name.split(".")[:len(name.split(".")) - node.level + path.endswith("__init__.py")]
        base = ".".join(parts + ([base] if base else []))
      if base.startswith("msgm_jax"):
        for a in node.names:
          out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
  return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def part(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else "msgm_jax"


def test_every_part_has_a_layer():
  unknown = sorted({part(m) for m in MODULES} - set(LEVEL) - {"msgm_jax"})
  assert not unknown, f"parts without a layer in LAYERS (and msgm_jax/__init__.py): {unknown}"


def test_imports_point_down():
  upward = []
  for m, targets in GRAPH.items():
    if part(m) == "msgm_jax":
      continue
    for t in targets:
      a, b = part(m), part(t)
      if b != "msgm_jax" and a != b and LEVEL[b] >= LEVEL[a]:
        upward.append(f"{m} -> {t}")
  assert not upward, "imports that point up or sideways:\n" + "\n".join(sorted(upward))


def _circle():
  """One import circle as a list of modules, or None."""
  state = {}
  stack = []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for t in sorted(GRAPH[m]):
      if state.get(t) == "open":
        return stack[stack.index(t):] + [t]
      if t not in state:
        found = visit(t)
        if found:
          return found
    stack.pop()
    state[m] = "done"
    return None

  for m in sorted(GRAPH):
    if m not in state:
      found = visit(m)
      if found:
        return found
  return None


def test_no_import_circles():
  circle = _circle()
  assert circle is None, "import circle: " + " -> ".join(circle)


@pytest.mark.parametrize("source, bad", [
    ("from msgm_jax.cli import modes\n", "msgm_jax.cli.modes"),
    ("def f():\n  from msgm_jax.training import loop\n", "msgm_jax.training.loop"),
])
def test_the_check_sees_lazy_and_package_imports(tmp_path, source, bad):
  path = tmp_path / "x.py"
  path.write_text(source)
  assert bad in _imports("msgm_jax.diffusion.x", str(path))
