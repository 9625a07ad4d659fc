"""Running ``ykt`` from tests: as its own process (``ykt``), or in this process with the
output captured by pytest's ``capsys`` (``ykt_here``), for tests that set up files in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from terminal.cli.main import main

YKT = [sys.executable, "-m", "terminal.cli.main"]


def ykt(
    *args: str,
    check: bool = True,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``ykt ARGS`` as a subprocess; with ``check`` a non-zero exit fails the test with
    its stderr (pass ``check=False`` to look at a refusal). ``env`` adds to the environment."""
    r = subprocess.run(
        [*YKT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **env} if env is not None else None,
        check=False,
    )
    if check:
        assert r.returncode == 0, f"ykt {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
    return r


def ykt_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``ykt ARGS`` in this process: the exit code, stdout and stderr."""
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err
