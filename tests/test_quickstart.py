"""docs/api-quickstart.md is a tested script: every command of the page runs, as written, against a live server
on a fresh database holding the demo's data, and each answer the page shows is compared with the one received.

How the page is read: each ```bash block is a step; the ```json or ```text block right after it is what the step
prints (several answers one after the other). The steps run in one bash session (their variables and functions
carry over), from the project's folder; the only change made to them is the server's address. Answers compare as
the page says: an object shown lists the fields discussed (the answer may have more), and "…" stands for a value
that differs between runs (ids, creation times).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api-quickstart.md"
DOC_SERVER = "http://127.0.0.1:8000"
ANY = "…"

BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def page_steps(text: str) -> list[tuple[str, tuple[str, str] | None]]:
    """``[(bash, (kind, expected) or None)]``: each bash block with the output block that follows it, if any."""
    steps: list[tuple[str, tuple[str, str] | None]] = []
    blocks = list(BLOCK.finditer(text))
    for i, block in enumerate(blocks):
        if block.group(1) != "bash":
            continue
        expected = None
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        if (
            following is not None
            and following.group(1) in ("json", "text")
            and not text[block.end() : following.start()].strip()
        ):
            expected = (following.group(1), following.group(2))
        steps.append((block.group(2), expected))
    return steps


def json_values(text: str) -> list:
    """The JSON values of ``text``, one after the other (pretty-printed or one per line)."""
    decoder = json.JSONDecoder()
    values, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)


def shown_matches(shown, got, path: str = "$") -> list[str]:
    """Where ``got`` differs from what the page shows (empty when it matches)."""
    if shown == ANY:
        return []
    if isinstance(shown, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {got!r}"]
        problems = []
        for key, value in shown.items():
            if key not in got:
                problems.append(f"{path}.{key}: missing (answer has {sorted(got)})")
            else:
                problems += shown_matches(value, got[key], f"{path}.{key}")
        return problems
    if isinstance(shown, list):
        if not isinstance(got, list) or len(got) != len(shown):
            return [f"{path}: expected {len(shown)} items, got {got!r}"]
        return [p for i, (a, b) in enumerate(zip(shown, got, strict=True)) for p in shown_matches(a, b, f"{path}[{i}]")]
    return [] if shown == got else [f"{path}: the page shows {shown!r}, the answer was {got!r}"]


def test_page_reading_rules():
    steps = page_steps('```bash\necho 1\n```\n```json\n{"a": 1}\n```\ntext\n```bash\necho 2\n```\n')
    assert steps == [("echo 1\n", ("json", '{"a": 1}\n')), ("echo 2\n", None)]
    assert json_values('{"a": 1}\n{"b":\n [2]}') == [{"a": 1}, {"b": [2]}]
    assert shown_matches({"id": ANY, "n": [1]}, {"id": "7", "n": [1], "more": True}) == []
    assert shown_matches({"n": "2"}, {"n": "3"}) == ["$.n: the page shows '2', the answer was '3'"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_quickstart_runs_as_written_against_the_demo(live_server, tmp_path, settings):
    if shutil.which("curl") is None or shutil.which("bash") is None:
        pytest.skip("the page's commands need bash and curl")
    from django.db import connection

    from backoffice.demo import demo_load

    demo_load(stdout=io.StringIO(), scale=0.5)  # the demo's data first: the page's names must not collide with it

    steps = page_steps(PAGE.read_text())
    assert len(steps) >= 10 and sum(1 for _, expected in steps if expected) >= 10
    db = connection.settings_dict
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "DEBUG": "true",
        # manage.py commands of the page reach the test database the live server serves
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
    }
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    script = ["set -eo pipefail", f"cd {ROOT}"]
    for i, (commands, _) in enumerate(steps):
        commands = commands.replace(DOC_SERVER, live_server.url)
        script.append(f"echo {i} > {outputs}/step\n{{\n{commands}\n}} > {outputs}/{i}.out 2> {outputs}/{i}.err")
    run = subprocess.run(["bash", "-c", "\n".join(script)], env=env, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        failed = (outputs / "step").read_text().strip()
        pytest.fail(
            f"step {failed} failed ({run.returncode}):\n{steps[int(failed)][0]}\n"
            f"stdout: {(outputs / f'{failed}.out').read_text()[-2000:]}\n"
            f"stderr: {(outputs / f'{failed}.err').read_text()[-2000:]}"
        )

    problems = []
    for i, (_commands, expected) in enumerate(steps):
        if expected is None:
            continue
        kind, shown = expected
        got = (outputs / f"{i}.out").read_text()
        if kind == "text":
            if got.strip() != shown.strip():
                problems.append(f"step {i}: the page shows {shown.strip()!r}, it printed {got.strip()!r}")
            continue
        shown_values, got_values = json_values(shown), json_values(got)
        if len(shown_values) != len(got_values):
            problems.append(f"step {i}: the page shows {len(shown_values)} answers, it printed {got!r}")
            continue
        for shown_value, got_value in zip(shown_values, got_values, strict=True):
            problems += [f"step {i}: {p}" for p in shown_matches(shown_value, got_value)]
    assert problems == [], "\n".join(problems)
