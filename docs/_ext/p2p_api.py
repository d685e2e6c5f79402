"""``.. p2p-submodule:: p2p.pkg.mod``: autodoc a module without what its package exports.

The package pages document each package's ``__all__``; a public submodule often re-exports
some of those names too, and documenting them twice gives Sphinx two targets for one name.
This directive expands to ``.. automodule::`` with ``:exclude-members:`` set to the names
whose objects the top-level package (``p2p.<name>``) already exports.
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _exported_elsewhere(module_name: str) -> list[str]:
    package_name = ".".join(module_name.split(".")[:2])
    package = importlib.import_module(package_name)
    module = importlib.import_module(module_name)
    exported = {id(getattr(package, name)) for name in package.__all__ if hasattr(package, name)}
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and id(value) in exported
    )


class SubmoduleDirective(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        lines = [f".. automodule:: {module_name}"]
        excluded = _exported_elsewhere(module_name)
        if excluded:
            lines.append(f"   :exclude-members: {', '.join(excluded)}")
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, container)
        return list(container.children)


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("p2p-submodule", SubmoduleDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
