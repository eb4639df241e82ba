"""Every command stops quietly when the reader of its output has gone (`datamin config | head`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DATAMIN = str(Path(sys.executable).parent / "datamin")


@pytest.mark.parametrize("argv", [["config"], ["policy"], ["schemas", "list"], ["--help"], ["policy", "--help"]])
def test_a_closed_pipe_ends_the_command_without_a_traceback(argv: list[str], tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write meets EPIPE
    try:
        result = subprocess.run([DATAMIN, *argv], stdout=write, stderr=subprocess.PIPE, text=True, timeout=120,
                                cwd=tmp_path)
    finally:
        os.close(write)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode in (0, 141)


def test_head_of_config_is_clean(tmp_path: Path) -> None:
    result = subprocess.run(f"'{DATAMIN}' config | head -n 1", shell=True, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.stdout.strip() == "{" and result.stderr == ""
