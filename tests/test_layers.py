"""Imports run downward: data -> codec / audiolm -> launch, never up and never in a circle.

Every import statement of every module is read (top level and inside functions alike), so a
lazy import that climbs a layer is caught as surely as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what each package may import from the project's own packages
ALLOWED = {"data": set(), "codec": {"data"}, "audiolm": {"data"}, "launch": {"data", "codec", "audiolm"}}


def project_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in ALLOWED or name.split(".")[0] == "bench"]


def test_every_import_runs_down_the_layers():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, name in project_imports(path):
                top = name.split(".")[0]
                if top != package and top not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, "imports that climb a layer:\n" + "\n".join(wrong)


def test_the_checker_sees_lazy_and_dotted_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom codec.codec import Codec\n\ndef f():\n    import launch.cli\n"
                      "    from bench import codec\n    from . import sibling\n")
    assert project_imports(source) == [(2, "codec.codec"), (5, "launch.cli"), (6, "bench")]
