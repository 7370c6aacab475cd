"""The documentation holds together: every relative link in README.md, docs/ and launch/
points to a file of the repository, the README stays a few screens long, and nothing cites a
file outside the repository."""

import glob
import os
import re

import pytest

from tests.helpers import ROOT

PAGES = sorted(["README.md", *(os.path.relpath(p, ROOT) for p in glob.glob(
    os.path.join(ROOT, "docs", "*.md"))), "launch/README.md"])
LINK = re.compile(r"\]\(([^)\s#]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_point_to_files(page):
  text = open(os.path.join(ROOT, page), encoding="utf-8").read()
  missing = [t for t, _ in LINK.findall(text) if not t.startswith(("http:", "https:", "mailto:"))
             and not os.path.exists(os.path.join(ROOT, os.path.dirname(page), t))]
  assert not missing, f"{page}: links to missing files: {missing}"


def test_the_readme_is_a_few_screens():
  n = len(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().splitlines())
  assert n <= 220, f"README.md has {n} lines; move the detail to a docs/ page and link it"


def test_nothing_cites_a_file_outside_the_repository():
  found = []
  for pattern in ("msgm_jax/**/*.py", "docs/*.md", "README.md", "tests/**/*.py", "scripts/*"):
    for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
      if os.path.basename(path) == "test_docs.py":
        continue
      text = open(path, encoding="utf-8", errors="replace").read()
      if "shared/docs" in text or "../shared" in text:
        found.append(os.path.relpath(path, ROOT))
  assert not found, f"cite docs/ inside the repository instead: {found}"
