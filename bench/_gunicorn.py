"""Starting and measuring bench/_webapp.py under a real gunicorn, for the web benchmarks."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import config_from

BENCH = Path(__file__).resolve().parent
HEADERS = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "Accept-Language": "nb-NO,nb",
           "Cookie": "session=s-1; datamin_consent=visitor-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=HEADERS)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
        return body
    finally:
        conn.close()


@contextmanager
def gunicorn(env: dict[str, str], *, middleware: bool, workers: int, preload: bool) -> Iterator[int]:
    """Yields the port of a running gunicorn serving the bench app; stops it (SIGTERM) afterwards."""
    port = free_port()
    full = {**os.environ, **env, "DATAMIN_BENCH_MIDDLEWARE": "1" if middleware else "0"}
    argv = [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--chdir", str(BENCH), "--log-level", "warning", *(["--preload"] if preload else []), "_webapp:app"]
    server = subprocess.Popen(argv, env=full)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(port, "/")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)


@contextmanager
def datamin_agent(env: dict[str, str], socket_path: Path) -> Iterator[tuple[dict[str, str], int]]:
    """A running `datamin agent` at ``socket_path``: yields ``env`` with producer.agent_socket set (for the
    app) and the agent's pid; stops it (SIGTERM) afterwards."""
    env = {**env, "DATAMIN__PRODUCER__AGENT_SOCKET": json.dumps(str(socket_path))}
    agent = subprocess.Popen([str(Path(sys.executable).parent / "datamin"), "agent"], env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("datamin agent did not start")
            time.sleep(0.1)
        yield env, agent.pid
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)


@contextmanager
def producers_setup(env: dict[str, str], workdir: Path, *, direct: bool) -> Iterator[tuple[dict[str, str], int | None]]:
    """The app's environment and the pid of the `datamin agent` its producers hand their events to, or
    None with ``direct`` (they send to Kafka themselves); says which on stdout."""
    print(f"transport: {config_from(env).kafka.client}, "
          f"{'producers send directly' if direct else 'producers hand their events to a datamin agent'}",
          flush=True)
    if direct:
        yield env, None
        return
    with datamin_agent(env, workdir / "agent.sock") as (agent_env, pid):
        yield agent_env, pid


def workers_of(port: int) -> list[int]:
    """Pids of the gunicorn worker processes listening on ``port`` (children of its master)."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines()[1:]]
    masters = {r[0] for r in rows if len(r) == 3 and f"127.0.0.1:{port}" in r[2] and "gunicorn" in r[2]}
    return [int(r[0]) for r in rows if len(r) == 3 and r[1] in masters]


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's threads, to the nanosecond (see `thread_cpu_seconds`)."""
    return sum(thread_cpu_seconds(pid).values())


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time of each live thread of a process, by "name/thread id": the scheduler's own runtime
    (/proc/<pid>/task/<tid>/schedstat, in ns). /proc/<pid>/stat counts whole clock ticks (10 ms) charged
    to whichever thread a tick lands on: over a few seconds of CPU that is a few percent of noise, the
    size of what the web benchmarks measure. A thread that ended is no longer counted."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            runtime_ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except OSError:  # the thread ended
            continue
        out[f"{stat[stat.index('(') + 1:stat.rindex(')')]}/{tid}"] = runtime_ns / 1e9
    return out


def producer_stats(port: int) -> dict[str, Any]:
    return dict(json.loads(get(port, "/_stats")))
