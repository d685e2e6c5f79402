"""Sphinx configuration of the p2p documentation site (``tox -e docs``)."""

from __future__ import annotations

import datetime
import sys
from importlib.metadata import version as _version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))  # our p2p_api extension

project = "p2p"
author = "the p2p authors"
copyright = f"{datetime.date.today().year}, {author}"
release = _version("p2p-controller")
version = release

extensions = [
    "myst_parser",  # Markdown pages and the included READMEs
    "sphinx.ext.autodoc",  # the API reference from docstrings
    "sphinxarg.ext",  # the p2p-node reference from cli.build_parser()
    "p2p_api",  # p2p-submodule: a module page without what its package exports
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Docstrings write `name` (single backticks) for code: make it a cross-reference, shown as
# code whether or not it resolves.
default_role = "py:obj"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"p2p {release}"
