"""`python -m chatbot_saas.devservices exec` as owner, as attacher, after a crash and on a stop signal.

Real launcher processes on a temporary VAR_DIR. DATABASE_URL stays the test run's, so each launcher
only starts a redis-server (fast); tests/project/test_launcher_live.py runs the whole `run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbot_saas import devrecord, embedded
from chatbot_saas.devrecord import Proc, ServicesRecord

BASE_DIR = Path(__file__).resolve().parents[2]
LAUNCHER = [sys.executable, "-m", "chatbot_saas.devservices", "exec", "--"]
# A command that waits for a file, and dies quietly on any signal (a Python one would print a traceback on SIGINT).
WAIT_FOR_FILE = 'while [ ! -e "$1" ]; do sleep 0.05; done'
PRINT_REDIS_URL = "import os; print('REDIS_URL=' + os.environ['REDIS_URL'])"


def launcher_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    return env


def run_launcher(var_dir: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LAUNCHER, *command], env=launcher_env(var_dir), cwd=BASE_DIR, capture_output=True, text=True, timeout=120
    )


def wait_for_live_record(var_dir: Path, timeout: float = 60) -> ServicesRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = devrecord.read_record(var_dir)
        if record is not None and record.is_live():
            return record
        time.sleep(0.1)
    raise AssertionError(f"no live record in {var_dir}")


def wait_until_gone(procs: list[Proc], timeout: float) -> list[Proc]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(proc.alive() for proc in procs):
        time.sleep(0.05)
    return [proc for proc in procs if proc.alive()]


class Owner:
    """A launcher that started the services and runs a command until `release()`."""

    def __init__(self, var_dir: Path) -> None:
        self.flag = var_dir.parent / f"release-{time.monotonic_ns()}"
        self.log = (var_dir.parent / "owner.log").open("w")
        self.process = subprocess.Popen(
            [*LAUNCHER, "sh", "-c", WAIT_FOR_FILE, "sh", str(self.flag)],
            env=launcher_env(var_dir),
            cwd=BASE_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.record = wait_for_live_record(var_dir)

    def release(self) -> int:
        self.flag.touch()
        return self.process.wait(30)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for proc in self.record.servers():
            embedded.redis_stop(proc)
        self.log.close()


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def owner(var_dir: Path) -> Iterator[Owner]:
    started = Owner(var_dir)
    yield started
    started.close()


def test_exec_beside_a_running_launcher_uses_its_redis_and_leaves_it_running(owner, var_dir):
    redis = owner.record.redis
    assert owner.record.urls["REDIS_URL"].startswith("redis://127.0.0.1:")

    result = run_launcher(var_dir, sys.executable, "-c", PRINT_REDIS_URL)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"REDIS_URL={owner.record.urls['REDIS_URL']}" in result.stdout
    assert f"attached to the services of `devservices exec` (pid {owner.record.owner.pid})" in result.stdout
    assert embedded.stray_redis_servers(var_dir / "redis") == [redis]  # one redis-server, the owner's
    assert redis.alive() and devrecord.read_record(var_dir) == owner.record

    assert owner.release() == 0
    assert wait_until_gone([redis], 10) == []
    assert devrecord.read_record(var_dir) is None


def test_a_launcher_after_a_killed_one_stops_its_orphaned_redis_and_starts_afresh(owner, var_dir):
    orphan = owner.record.redis
    os.killpg(owner.process.pid, signal.SIGKILL)  # the launcher and its command; redis runs in its own session
    owner.process.wait()
    assert orphan.alive() and devrecord.read_record(var_dir).is_stale()

    result = run_launcher(var_dir, sys.executable, "-c", PRINT_REDIS_URL)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(pid {owner.record.owner.pid}) is gone; cleaning up" in result.stdout
    assert not orphan.alive()
    assert "REDIS_URL=redis://127.0.0.1:" in result.stdout
    assert embedded.stray_redis_servers(var_dir / "redis") == []  # the fresh one stopped with its launcher
    assert devrecord.read_record(var_dir) is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_to_the_launcher_alone_stops_its_command_and_redis_within_15_seconds(owner, var_dir, signum):
    import psutil

    command = [Proc.of(child.pid) for child in psutil.Process(owner.process.pid).children()]
    assert command, "the launcher's command is running"

    os.kill(owner.process.pid, signum)

    assert wait_until_gone([owner.record.owner, *command, *owner.record.servers()], 15) == []
    assert owner.process.wait(1) != 0
    assert devrecord.read_record(var_dir) is None
    owner.log.flush()
    assert "Traceback" not in (var_dir.parent / "owner.log").read_text()
