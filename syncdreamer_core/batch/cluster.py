"""Where a batch runs: a local Ray started for the command, or an existing cluster.

An address is checked before the command commits to it: nothing listening, a port that
is not a Ray head, or a cluster that wants its authentication token each fail within
seconds with a message saying so, instead of Ray's endless reconnection warnings. Ray's
own log lines are kept off the console (they go to Ray's log files); the user sees the
pack's progress and result lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
#: How long joining a cluster may take before the command gives up.
CONNECT_SECONDS = 25.0
#: Ray writes the token of a token-authenticated cluster here (``ray start --head``).
TOKEN_FILE = Path.home() / ".ray" / "auth_token"


class ClusterError(ValueError):
    """No usable Ray cluster at the address given, with what to do."""


def _host_port(address: str) -> tuple[str, int] | None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


_JOINABLE: set[str] = set()


def check_address(address: str) -> None:
    """Fail within seconds when ``address`` is no Ray cluster this command can join."""
    if address in _JOINABLE:
        return
    use_cluster_token()
    if address.startswith("ray://"):
        raise ClusterError(
            f"--address {address}: Ray Client (ray://) cannot run this batch (Ray Data pipelines need a driver inside "
            "the cluster). Run the command on a node of the cluster with --address auto, or --address HEAD_IP:6379 "
            "(the GCS port given to `ray start --head --port`)")
    if address in ("auto", "local"):
        return
    target = _host_port(address)
    if target is None:
        raise ClusterError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379) or auto")
    target = (_as_ray_resolves(target[0]), target[1])
    try:
        with socket.create_connection(target, timeout=5) as connection:
            speaks_http2 = _answers_http2(connection)
    except OSError as error:
        raise ClusterError(f"no Ray cluster at {address}: nothing answers on that port ({error.strerror or error}). "
                           "Start one with `ray start --head --port PORT` or check the address") from None
    if speaks_http2 is False:
        raise ClusterError(f"no Ray cluster at {address}: something answers on that port, but not a Ray head (it does "
                           "not speak gRPC). Check the address: the GCS port of `ray start --head`, 6379 by default")
    _probe(address)
    _JOINABLE.add(address)


def _as_ray_resolves(host: str) -> str:
    """Ray serves a head started on this machine at the machine's address, and maps
    localhost / 127.0.0.1 to it: so must this check."""
    try:
        from ray._private.services import resolve_ip_for_localhost

        return resolve_ip_for_localhost(host)
    except Exception:  # noqa: BLE001 - an older or newer Ray: check the address as given
        return host


def _answers_http2(connection: socket.socket) -> bool | None:
    """Whether the server answers an HTTP/2 greeting as a gRPC server (Ray's head) does: with
    a SETTINGS frame. None when it does not answer at all within a few seconds."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    try:
        connection.settimeout(3)
        connection.sendall(preface)
        head = connection.recv(9)
    except OSError:
        return None
    return len(head) >= 4 and head[3] == 0x04


def _probe(address: str) -> None:
    """Join the cluster once in a child process, with a deadline: a port that answers but
    is no Ray head (or wants a token) would otherwise keep ray.init retrying for minutes."""
    code = ("import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR'); "
            "print('ray-ok', ray.cluster_resources().get('CPU', 0))")
    try:
        result = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True,
                                timeout=CONNECT_SECONDS)
    except subprocess.TimeoutExpired as timeout:
        output = (timeout.stderr or b"")
        output = output.decode(errors="replace") if isinstance(output, bytes) else output
        if "InvalidAuthToken" in output or "Unauthenticated" in output:
            raise ClusterError(_token_message(address)) from None
        raise ClusterError(f"no Ray cluster at {address}: something answers on that port, but no Ray head joined "
                           f"within {CONNECT_SECONDS:.0f} s. Check the address (the GCS port of `ray start --head`, "
                           "6379 by default)") from None
    if "ray-ok" not in result.stdout:
        output = result.stderr
        if "InvalidAuthToken" in output or "Unauthenticated" in output:
            raise ClusterError(_token_message(address))
        last = next((line for line in reversed(output.splitlines()) if line.strip()), "no output")
        raise ClusterError(f"could not join the Ray cluster at {address}: {last[:300]}")


def _token_message(address: str) -> str:
    return (f"the Ray cluster at {address} uses token authentication and this machine has no matching token: copy "
            f"the head node's {TOKEN_FILE} to the same place here (or set RAY_AUTH_TOKEN), then run again")


def use_cluster_token() -> None:
    """A cluster started with ``ray start --head`` authenticates with the token Ray keeps in
    ~/.ray/auth_token, which a driver sends only when RAY_AUTH_MODE says token; Ray reads
    that setting when it is first imported, so this runs before."""
    has_token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or TOKEN_FILE.is_file()
    if has_token and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"


@contextlib.contextmanager
def _quiet_ray_logs():
    """Ray's C++ core prints some of its log lines on the driver's console: at start-up, and
    an ERROR about actor constructor arguments that every Ray Data actor pool triggers (Ray
    issue 53727; harmless here: the arguments live as long as the job). The driver's core
    logs at FATAL only, and what it prints while starting goes to a file that is shown only
    if the start fails. Set RAY_BACKEND_LOG_LEVEL yourself to see Ray's own lines."""
    import tempfile

    own_level = "RAY_BACKEND_LOG_LEVEL" not in os.environ
    if own_level:
        os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile("w+") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except Exception as error:
            os.dup2(saved, 2)
            captured.seek(0)
            lines = [line for line in captured.read().splitlines() if line.strip()][-5:]
            raise ClusterError(f"Ray did not start: {error}" + ("\n" + "\n".join(lines) if lines else "")) from None
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if own_level:
                os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)


def _quiet_ray_data() -> None:
    """Ray Data's console handler prints INFO lines (execution plans, log paths); they stay
    in its log file, and the console shows its errors only."""
    import ray.data  # noqa: F401 - configures Ray Data's loggers, which are then adjusted

    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)


def connect(address: str | None = None, object_store_mb: int | None = None) -> bool:
    """Join the cluster at ``address`` / $RAY_ADDRESS, or start a local Ray sized to this
    machine. Returns whether this call started Ray (and must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        check_address(address)
        package = str(PACKAGE_ROOT / "syncdreamer_core")
        with _quiet_ray_logs():
            # The cluster's nodes get this package from the driver, whatever is installed there.
            ray.init(address=address, runtime_env={"py_modules": [package], "excludes": ["examples/*"]}, **quiet)
    else:
        memory = (object_store_mb or 1024) * 2**20
        path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        with _quiet_ray_logs():
            # "local": a new Ray of its own, even where `ray start` runs one on this machine
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=memory,
                     runtime_env={"env_vars": {"PYTHONPATH": path}}, **quiet)
    _quiet_ray_data()
    return True
