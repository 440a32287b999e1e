"""Helpers for the cluster-side asectl tests: run asectl with a given $ASE_HOME, check one-line errors."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import subprocess
import termios
import time
from pathlib import Path

from ase_serving.cluster_settings import ClusterSettings


def set_up(home: Path, address: str, account: str | None, password: str | None) -> None:
    """What `asectl setup` saves, written directly (setup itself is tested in test_setup.py)."""
    ClusterSettings(address, account, password).save(home)


def project_home(tmp_path: Path, address: str, password: str) -> Path:
    """A home set up for a config centre (account admin), in a project named after ``tmp_path``,
    so that tests never share items or consumers."""
    home = tmp_path / "home"
    set_up(home, address, "admin", password)
    settings = json.loads((home / "cluster.json").read_text())
    settings["regions"]["default"]["project"] = re.sub(r"[^A-Za-z0-9]", "-", tmp_path.name)[:40]
    (home / "cluster.json").write_text(json.dumps(settings))
    return home


def on_terminal(
    args: list[str], env: dict[str, str], answers: list[tuple[str, str]], cwd: Path | None = None
) -> tuple[int | None, str]:
    """Run ``args`` with a pseudo-terminal as its controlling terminal; answer each prompt that
    contains ``answers[i][0]`` with ``answers[i][1]``, in order. Returns (exit status, all output);
    ``answers`` is left with the prompts that never came."""
    master, slave = pty.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "dumb", "COLUMNS": "200"},
        cwd=cwd,
        preexec_fn=controlling_tty,  # the child needs the pty as its terminal
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None or select.select([master], [], [], 0)[0]:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            if not select.select([master], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            seen += chunk
            # Answer once the prompt is complete: click prints the text, then getpass/input print
            # the final " " (getpass only after turning echo off).
            last = seen.rsplit(b"\n", 1)[-1]
            if answers and answers[0][0].encode() in last and last.endswith(b": "):
                os.write(master, answers.pop(0)[1].encode() + b"\n")
        proc.wait(10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return proc.returncode, seen.decode(errors="replace")
