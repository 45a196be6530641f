"""The embedded local AWS: a moto server on 127.0.0.1 run in the background, pid and log on disk."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import botocore.session
from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES

READY_TIMEOUT_S = 60.0
# How our server shows in its command line: this module, and its name before the code moved to
# local_aws/ (a server a previous version started is still ours to reuse and stop).
SERVER_MODULES = (b"local_aws.moto_server", b"tickstream.moto_server")
STOP_TIMEOUT_S = 10.0


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server of our own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedAwsError(RuntimeError):
    """The local moto server could not be started or reached; the message says what to look at."""


# Variables botocore reads (credentials, profile, config files, endpoints) start with this. The
# server runs moto, which uses botocore and fails every request when one names a profile this
# machine lacks or a config file it cannot parse: it is started without any of them.
AWS_VARIABLES_PREFIX = "AWS_"


def sealed_botocore_session() -> botocore.session.Session:
    """A botocore session that reads nothing of the shell: no AWS_ variable, no profile, no
    config or credentials file (botocore fails on one it cannot find or parse, or wants a login
    for; AWS_DEFAULTS_MODE=garbage fails every client). Its settings are botocore's defaults,
    and the credentials and region are given to it explicitly."""
    ignored = {
        name: (config_name, None, os.devnull if name in _FILES else default, conversion)
        for name, (config_name, _variable, default, conversion) in BOTOCORE_DEFAUT_SESSION_VARIABLES.items()
    }
    return botocore.session.Session(session_vars=ignored)


_FILES = ("config_file", "credentials_file")


def regions_moto_serves() -> frozenset[str]:
    """The regions of botocore's endpoint data, every partition's: the ones moto has backends for."""
    endpoints = sealed_botocore_session().get_component("data_loader").load_data("endpoints")
    return frozenset(region for partition in endpoints["partitions"] for region in partition["regions"])


LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")


def bypass_proxies_for_loopback(environ: MutableMapping[str, str]) -> None:
    """Adds the loopback hosts to NO_PROXY and no_proxy: a shell's HTTP_PROXY (a company proxy)
    would otherwise carry every call to the embedded moto, from the CLI, its handlers and
    urllib alike, to a proxy that cannot reach this machine's loopback. Both are set to the hosts
    of both (Python and requests read the lowercase one first, so an uppercase-only list would
    be lost), and `*`, which bypasses every proxy only when it is the whole value, is left alone."""
    lists = [environ.get(name, "") for name in NO_PROXY_VARIABLES]
    if "*" in (value.strip() for value in lists):
        return
    hosts = list(dict.fromkeys(h.strip() for value in lists for h in value.split(",") if h.strip()))
    joined = ",".join([*hosts, *(h for h in LOOPBACK_HOSTS if h not in hosts)])
    for name in NO_PROXY_VARIABLES:
        environ[name] = joined


def local_server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The moto server's environment: the shell's without its AWS_ variables, and no config or
    credentials file, so none of HOME's is read either."""
    kept = {k: v for k, v in environ.items() if not k.startswith(AWS_VARIABLES_PREFIX)}
    return {**kept, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


@dataclass(frozen=True)
class EmbeddedAws:
    state_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "moto.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "moto.log"

    def answers(self) -> bool:
        """True when a moto server answers on the port (ours or one somebody else started)."""
        try:
            # The dashboard page is static; data.json would serialize every resource moto holds.
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=5) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def own_pid(self) -> int | None:
        """The pid we started, if that process still runs a moto server."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if any(module in cmdline for module in SERVER_MODULES) else None

    def start(self) -> bool:
        """Starts the server unless one answers already; True when this call started it."""
        if self.answers():
            return False
        if self._port_taken():
            raise EmbeddedAwsError(
                f"127.0.0.1:{self.port} is in use by something that is not moto: set TICKSTREAM_PORT "
                "to a free port, or AWS_ENDPOINT_URL to the stack that runs there (e.g. LocalStack)"
            )
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            log = self.log_file.open("ab")
        except OSError as exc:
            raise EmbeddedAwsError(
                f"cannot keep the server's state in {self.state_dir} ({exc.strerror}): "
                "set TICKSTREAM_STATE_DIR to a writable folder"
            ) from exc
        with log:
            process = subprocess.Popen(
                [sys.executable, "-m", "local_aws.moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=local_server_environment(os.environ),
            )
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedAwsError(f"moto server exited with {process.returncode}; see {self.log_file}")
            if self.answers():
                return True
            time.sleep(0.2)
        self.stop()
        raise EmbeddedAwsError(
            f"moto server did not answer within {READY_TIMEOUT_S:.0f}s; see {self.log_file}"
        )

    def stop(self) -> bool:
        """Stops the server we started; True when there was one to stop."""
        pid = self.own_pid()
        if pid is None:
            return False
        self.pid_file.unlink(missing_ok=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return True

    def _port_taken(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0
