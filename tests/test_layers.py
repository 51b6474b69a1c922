"""Imports only point down the stack (../shared/ARCHITECTURE.md): a stage never reaches into a later one.

The order as the code has it: the doctor sits below train (training runs it first) and above save (its
report is written atomically); label is a stage on top that uses the doctor's checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lora_scripts

LAYERS = [
    ["errors", "errors_zh", "language", "files", "progress", "stopping"],
    ["console"],
    ["config"],
    ["data"],
    ["models"],
    ["inject"],
    ["save"],
    ["doctor"],
    ["train"],
    ["generate", "tools"],
    ["batch"],
    ["label"],
    ["demo", "demo_llm", "cli", "ui", "__init__", "__main__"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
ROOT = Path(lora_scripts.__file__).parent


def _imports(path: Path) -> set[str]:
    """Top-level lora_scripts packages imported anywhere in `path` (function-level imports too)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = list(parts[:-1]) if path.name != "__init__.py" else list(parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module or "").split(".")] if node.module else base
                names = [target] if node.module else [[*base, alias.name] for alias in node.names]
            elif (node.module or "").startswith("lora_scripts"):
                names = [node.module.split(".")[1:]]
            else:
                continue
            found.update(n[0] for n in names if n and n[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("lora_scripts."))
    return found


def test_every_import_points_down():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        own = path.relative_to(ROOT).parts[0].removesuffix(".py")
        assert own in RANK, f"{own} is not placed in LAYERS"
        for target in _imports(path):
            target = target.removesuffix(".py")
            if target in RANK and RANK[target] > RANK[own]:
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, "imports pointing up the stack:\n" + "\n".join(wrong)
