"""The layering (DESIGN.md "Layout") holds: import-linter's contracts in pyproject.toml are kept.

``core`` <- ``catalog`` <- ``customers`` <- ``metering`` <- ``wallets`` <- ``invoicing`` <- ``backoffice``; no cycles
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
