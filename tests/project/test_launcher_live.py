"""A real `make run` (`python -m chatbot_saas.devservices run`) on its own VAR_DIR and ports: the CLI and
`devservices exec` beside it use its database and Redis, and a stop signal leaves no process behind.

Each start takes 30-90 s (initdb and migrations the first time, the worker loading its model), so one
launcher serves several checks, and the second start reuses the first one's data directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from chatbot_saas import devrecord, embedded
from chatbot_saas.devrecord import Proc, ServicesRecord
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

BASE_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT = 300  # a loaded 2-core machine; usually 30-90 s
PRINT_DEMO_BOT = (
    "from bots.models import Bot; "
    "print('DEMO_BOT=' + Bot.objects.unscoped().get(tenant__slug='demo', name='demo').public_id)"
)
PRINT_SERVICES = (
    "import os; from chatbot_saas.celery import app; "
    "print('URLS=' + os.environ['DATABASE_URL'] + ' ' + os.environ['REDIS_URL']); "
    "print('WORKERS=%d' % len(app.control.ping(timeout=10)))"
)


@dataclass
class Launcher:
    process: subprocess.Popen
    log_path: Path
    var_dir: Path
    web_port: int
    demo_port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def record(self) -> ServicesRecord:
        record = devrecord.read_record(self.var_dir)
        assert record is not None and record.is_live(), self.log()[-3000:]
        return record

    def processes(self) -> list[Proc]:
        """Every process this launcher started: its tree, and Postgres's (pg_ctl detached it)."""
        roots = [psutil.Process(self.process.pid), psutil.Process(self.record().postgres.pid)]
        found = []
        for root in roots:
            for process in [root, *root.children(recursive=True)]:
                try:
                    found.append(Proc(pid=process.pid, started=process.create_time()))
                except psutil.Error:
                    continue
        return found


def cli_env(var_dir: Path) -> dict[str, str]:
    """A second terminal: nothing set but the data directory (the default ./var of a checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SITE_URL")}
    env.update(VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    return env


def start_launcher(var_dir: Path) -> Launcher:
    web_port, demo_port = free_port(), free_port()
    env = cli_env(var_dir)
    env.update(
        WEB_PORT=str(web_port),
        WIDGET_DEMO_PORT=str(demo_port),
        # A shared test machine: stock shared_buffers (and so no restart), one worker process.
        EMBEDDED_PG_SHARED_BUFFERS="128MB",
        CELERY_CONCURRENCY="1",
    )
    log_path = var_dir.parent / f"launcher-{web_port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatbot_saas.devservices", "run"],
            env=env,
            cwd=BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    launcher = Launcher(process, log_path, var_dir, web_port, demo_port)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, launcher.log()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=5) as response:
                if json.load(response)["status"] == "ok":
                    return launcher
        except (OSError, ValueError):
            pass
        time.sleep(1)
    os.killpg(process.pid, signal.SIGTERM)
    raise AssertionError("the launcher did not become healthy:\n" + launcher.log()[-3000:])


def run(var_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=cli_env(var_dir), cwd=BASE_DIR, capture_output=True, text=True, timeout=180
    )


def wait_until_gone(procs: list[Proc], timeout: float) -> list[Proc]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(proc.alive() for proc in procs):
        time.sleep(0.1)
    return [proc for proc in procs if proc.alive()]


def postmasters(pgdata: Path) -> list[int]:
    """The postgres processes running in `pgdata` whose parent is not a postgres: the postmasters."""
    found = []
    for process in psutil.process_iter(["pid", "name", "ppid"]):
        try:
            if process.info["name"] == "postgres" and Path(process.cwd()) == pgdata.resolve():
                if psutil.Process(process.info["ppid"]).name() != "postgres":
                    found.append(process.info["pid"])
        except psutil.Error:
            continue
    return found


def stop_quietly(launcher: Launcher) -> None:
    if launcher.process.poll() is None:
        os.killpg(launcher.process.pid, signal.SIGTERM)
        launcher.process.wait(30)


@pytest.fixture
def var_dir() -> Iterator[Path]:
    """Not under pytest's tmp_path: run as root, pgserver runs Postgres as the user `pgserver` and opens
    the directories above its data to it, and every new pytest session closes /tmp/pytest-of-root again."""
    path = Path(tempfile.mkdtemp(prefix="launcher-live-")) / "var"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def test_the_cli_and_exec_beside_make_run_use_its_services_and_sigterm_to_its_group_leaves_nothing(var_dir):
    launcher = start_launcher(var_dir)
    try:
        record = launcher.record()
        output = launcher.log()
        assert f"open http://127.0.0.1:{launcher.web_port}/" in output
        assert f"log in at http://127.0.0.1:{launcher.web_port}/accounts/login/" in output

        # A second terminal: `python manage.py ...` with no DATABASE_URL/REDIS_URL reads make run's database.
        cli = run(var_dir, "manage.py", "shell", "-c", PRINT_DEMO_BOT)
        assert cli.returncode == 0, cli.stderr
        public_id = cli.stdout.split("DEMO_BOT=", 1)[1].split()[0]
        # ...the same bot the running demo page embeds, and that page's origin may open a chat.
        with urllib.request.urlopen(f"http://127.0.0.1:{launcher.demo_port}/", timeout=10) as response:
            page = response.read().decode()
        assert f'src="http://127.0.0.1:{launcher.web_port}/static/widget/embed.js" data-bot="{public_id}"' in page
        session = urllib.request.Request(
            f"http://127.0.0.1:{launcher.web_port}/widget/{public_id}/session",
            data=b'{"visitor_id": "visitor-launcher-test"}',
            method="POST",
            headers={"Origin": f"http://127.0.0.1:{launcher.demo_port}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(session, timeout=30) as response:
                assert "token" in json.load(response)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"the demo page's origin cannot open a chat: {exc.code} {exc.read()!r}") from None

        # `devservices exec` beside it attaches: same URLs, the running worker answers on its broker,
        # and still one redis-server and one postmaster for the data directory.
        attached = run(
            var_dir,
            "-m",
            "chatbot_saas.devservices",
            "exec",
            "--",
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            PRINT_SERVICES,
        )
        assert attached.returncode == 0, attached.stdout + attached.stderr
        assert f"URLS={record.urls['DATABASE_URL']} {record.urls['REDIS_URL']}" in attached.stdout
        assert int(attached.stdout.split("WORKERS=", 1)[1].split()[0]) >= 1
        assert embedded.stray_redis_servers(var_dir / "redis") == [record.redis]
        assert postmasters(var_dir / "pgdata") == [record.postgres.pid]
        assert launcher.record() == record  # the attacher left the services and the record alone

        processes = launcher.processes()
        assert {"redis-server", "postgres", "daphne", "celery", "honcho"} <= {
            psutil.Process(p.pid).name() for p in processes if p.alive()
        }
        os.killpg(launcher.process.pid, signal.SIGTERM)  # what systemd, docker and CI send

        assert wait_until_gone(processes, 15) == []
        assert devrecord.read_record(var_dir) is None
        # The launcher's own lines (honcho prefixes the app processes' lines with a time and a name).
        assert not [line for line in launcher.log().splitlines() if line.startswith("Traceback")]
        assert "[devservices] redis stopped" in launcher.log() and "[devservices] postgres stopped" in launcher.log()
    finally:
        stop_quietly(launcher)

    # The same data directory again, stopped this time by SIGHUP to the launcher alone (a closed terminal).
    launcher = start_launcher(var_dir)
    try:
        processes = launcher.processes()
        os.kill(launcher.process.pid, signal.SIGHUP)
        assert wait_until_gone(processes, 15) == []
        assert devrecord.read_record(var_dir) is None
    finally:
        stop_quietly(launcher)
