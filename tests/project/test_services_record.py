"""The record of running embedded services (chatbot_saas/devrecord.py): how settings adopt it, when it
is stale, and the lock that keeps one redis-server per data directory. Real processes throughout."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from chatbot_saas import devrecord, embedded
from chatbot_saas.devrecord import DataDirBusy, Proc, ServicesRecord


def _log(_message: str) -> None:
    pass


@pytest.fixture
def sleeper() -> Iterator[Proc]:
    """A running process that stands for a server."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield Proc.of(process.pid)
    process.kill()
    process.wait()


def _dead_proc() -> Proc:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    proc = Proc.of(process.pid)
    process.wait()
    return proc


def _record(owner: Proc, server: Proc, **urls: str) -> ServicesRecord:
    return ServicesRecord(owner=owner, command="run", urls=urls, postgres=server, redis=server)


@pytest.fixture(autouse=True)
def _restore_discovery_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devrecord, "unresolved", devrecord.unresolved)
    monkeypatch.setattr(devrecord, "_var_dir", devrecord._var_dir)


@pytest.fixture
def unset_service_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)


def test_a_record_is_written_whole_readable_by_its_owner_only_and_read_back(tmp_path, sleeper):
    record = _record(Proc.of(os.getpid()), sleeper, DATABASE_URL="postgres://a", REDIS_URL="redis://b")
    devrecord.write_record(tmp_path, record)
    path = devrecord.record_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["services.json"]  # no temporary file left behind
    assert devrecord.read_record(tmp_path) == record


def test_an_unreadable_record_counts_as_no_record(tmp_path):
    devrecord.record_path(tmp_path).write_text('{"owner": ')
    assert devrecord.read_record(tmp_path) is None


def test_a_live_record_fills_only_the_unset_variable(tmp_path, sleeper, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://mine@db.example.com/app")
    monkeypatch.delenv("REDIS_URL", raising=False)
    record = _record(
        Proc.of(os.getpid()), sleeper, DATABASE_URL="postgres://recorded/app", REDIS_URL="redis://127.0.0.1:1/0"
    )
    devrecord.write_record(tmp_path, record)
    assert devrecord.adopt_recorded_services(tmp_path) == "record"
    assert os.environ["DATABASE_URL"] == "postgres://mine@db.example.com/app"
    assert os.environ["REDIS_URL"] == "redis://127.0.0.1:1/0"


def test_with_both_variables_set_the_record_is_not_even_read(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://prod/app")
    monkeypatch.setenv("REDIS_URL", "redis://prod:6379/0")
    devrecord.record_path(tmp_path).write_text("not json at all")
    assert devrecord.adopt_recorded_services(tmp_path) == "environment"
    assert (os.environ["DATABASE_URL"], os.environ["REDIS_URL"]) == ("postgres://prod/app", "redis://prod:6379/0")


def test_a_record_whose_owner_died_is_stale_and_never_adopted(tmp_path, sleeper, unset_service_variables):
    record = _record(_dead_proc(), sleeper, DATABASE_URL="postgres://gone/app", REDIS_URL="redis://gone/0")
    devrecord.write_record(tmp_path, record)
    assert record.is_stale() and not record.is_live()
    assert devrecord.adopt_recorded_services(tmp_path) == "none"
    assert "DATABASE_URL" not in os.environ and "REDIS_URL" not in os.environ


def test_only_a_connection_error_of_a_service_nobody_located_becomes_the_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://mine@db.example.com/app")
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert devrecord.adopt_recorded_services(tmp_path) == "none"
    with pytest.raises(SystemExit, match="no `make run` is running for"):
        with devrecord.explain_unreachable_services():
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    # DATABASE_URL was set: its own error says more than any hint.
    with pytest.raises(OperationalError, match="password authentication failed"):
        with devrecord.explain_unreachable_services():
            raise OperationalError("password authentication failed for user mine")


def test_a_record_whose_server_died_is_not_live_although_its_owner_runs(sleeper):
    record = _record(Proc.of(os.getpid()), sleeper)
    broken = ServicesRecord(owner=record.owner, command="run", postgres=sleeper, redis=_dead_proc())
    assert record.is_live()
    assert not broken.is_live() and not broken.is_stale()


def test_a_pid_reused_by_another_process_is_not_taken_for_the_recorded_one():
    me = Proc.of(os.getpid())
    assert me.alive()
    assert not Proc(pid=me.pid, started=me.started - 3600).alive()


def test_a_record_is_removed_only_by_its_own_owner(tmp_path, sleeper):
    record = _record(Proc.of(os.getpid()), sleeper)
    devrecord.write_record(tmp_path, record)
    devrecord.remove_record(tmp_path, owner=sleeper)
    assert devrecord.read_record(tmp_path) == record
    devrecord.remove_record(tmp_path, owner=record.owner)
    assert devrecord.read_record(tmp_path) is None


def test_a_second_redis_server_on_the_same_data_directory_cannot_start(tmp_path):
    data_dir = tmp_path / "redis"
    url, process = embedded.redis_start(data_dir, _log)
    first = Proc.of(process.pid)
    try:
        redis.Redis.from_url(url).set("written-before-the-stop", "1")
        with pytest.raises(DataDirBusy):
            embedded.redis_start(data_dir, _log)
        assert embedded.stray_redis_servers(data_dir) == [first]
    finally:
        embedded.redis_stop(first)
        process.wait(5)
    # Stopped with SIGTERM: the AOF was flushed and a final snapshot saved; the lock went with the process.
    assert b"written-before-the-stop" in (data_dir / "appendonly.aof").read_bytes()
    assert (data_dir / "dump.rdb").exists()
    url, process = embedded.redis_start(data_dir, _log)
    embedded.redis_stop(Proc.of(process.pid))
    process.wait(5)


def test_the_start_lock_admits_one_launcher_at_a_time(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from chatbot_saas.devrecord import start_lock\n"
            "with start_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError), devrecord.start_lock(tmp_path, timeout=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()
    with devrecord.start_lock(tmp_path, timeout=5):  # released by the kernel when its holder died
        pass


def _something_listens_on_5432() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", 5432)) == 0


def test_a_command_with_no_services_to_find_says_in_one_line_what_to_start(tmp_path):
    if _something_listens_on_5432():
        pytest.skip("a Postgres on 127.0.0.1:5432 answers the settings' local default")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "from tenants.models import Tenant; Tenant.objects.count()"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("No database or Redis to talk to") and "make run" in message
    assert "chatbot_saas.devservices exec" in message
