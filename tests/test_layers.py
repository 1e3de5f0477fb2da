"""The layering (README "Layout") holds: import-linter's contracts in pyproject.toml are kept; the tree is formatted.

``core`` <- ``metering`` <- ``catalog`` <- ``customers`` <- ``wallets`` <- ``invoicing`` <- ``backoffice``; no cycles
between an app's service modules; private modules are imported only inside their package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_tree_is_formatted_and_lint_clean():
    """``ruff format`` (120 columns) and ``ruff check`` (with the line-length rule) pass on the whole tree."""
    ruff = Path(sys.executable).parent / "ruff"
    for args in (["format", "--check", "."], ["check", "."]):
        result = subprocess.run([str(ruff), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
