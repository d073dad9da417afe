"""Reaching a Ray head, and Ray's token authentication for a private instance.

Ray 2.60 authenticates with a token where ``RAY_AUTH_MODE=token``; a new local instance turns it on
and writes a token under the home folder (``~/.ray/auth_token``). A private instance of
:class:`~tfnas.evaluation.ray_executor.RayExecutor` gets a token of this process instead, held in the
environment while it runs (:func:`use_process_token`, :func:`drop_process_token`). For an address
``HOST:PORT`` the checks here answer in seconds where ``ray.init`` retries for 20 s and then fails
without saying why: nothing listens there, something that is not a gRPC server does, another Ray
process' port does, or the head refuses this process' token (or its lack of one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
from typing import Any, Iterator

from tfnas.evaluation.executors import RayAddressError

logger = logging.getLogger(__name__)

__all__ = ["check_head", "check_reachable", "check_token_file", "drop_process_token", "refused_token",
           "use_process_token", "TOKEN_HELP"]


_AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
#: The token of this process' private instances (one for all of them: nothing is gained by another one).
_PROCESS_TOKEN = secrets.token_hex(32)


def use_process_token() -> bool:
    """Token authentication for a private instance without a token file: sets ``RAY_AUTH_MODE`` and
    ``RAY_AUTH_TOKEN`` (the instance's processes inherit them); False (nothing set) where the user set
    any of Ray's authentication variables."""
    if any(os.environ.get(name) is not None for name in _AUTH_ENV):
        return False
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=_PROCESS_TOKEN)
    _reload_auth_config()
    return True


def check_token_file() -> None:
    """An ``OSError`` naming ``RAY_AUTH_TOKEN_PATH`` when it names no readable file: Ray then said the
    cluster refused this process and to set what was already set."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    if not path or os.environ.get("RAY_AUTH_TOKEN"):  # (Ray takes RAY_AUTH_TOKEN first)
        return
    try:
        with open(os.path.expanduser(path), "rb"):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f"RAY_AUTH_TOKEN_PATH names a token file that cannot be read ({exc.strerror}); "
                      f"point it to the cluster's token file (`ray get-auth-token` on the head node prints the "
                      f"token) or unset it", path) from None


def drop_process_token() -> None:
    """Removes what :func:`use_process_token` set, so that a later ``ray.init`` in this process
    authenticates as it would have."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        os.environ.pop(name, None)
    _reload_auth_config()


def _reload_auth_config() -> None:
    """Ray's driver reads its authentication mode and token once and caches them: both are read again
    from the environment (what Ray itself does when it turns token authentication on)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except Exception as exc:  # Ray's internals: another layout may read the variables itself
        logger.debug("Ray's authentication settings not reloaded: %r", exc)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """``RayAddressError`` at once when nothing answers at ``HOST:PORT``, or something that is not a Ray
    head (no gRPC reply to an HTTP/2 preface): ``ray.init`` would retry for minutes and print its
    client's retries."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            try:
                speaks_grpc = _answers_http2(sock)
            except socket.timeout:
                raise RayAddressError(address, f"accepted the connection but did not answer within {timeout:g} s, as "
                                      f"a Ray head would; check the host and port") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        start = (f"`ray start --head --ray-client-server-port={port}` on {host} (a ray:// address is the head's "
                 f"Ray Client port, 10001 by default)" if address.startswith("ray://")
                 else f"`ray start --head --port={port}` on {host}")
        raise RayAddressError(address, f"no Ray head answers there ({reason}); start one with {start}, or use "
                                       f"ray_address = local") from None
    if not speaks_grpc:
        raise RayAddressError(address, "something answers there, but not a Ray head (no gRPC reply); check the host "
                                       "and port (`ray start --head` prints them), or use ray_address = local")


TOKEN_HELP = ("set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, a file) to the cluster's token "
               "(`ray get-auth-token` on the head node prints it)")


def check_head(address: str, setting: str = "", detail: str = "") -> None:
    """``RayAddressError`` at once when the gRPC server at ``HOST:PORT`` is not a Ray head (another Ray
    process' port: it has no GCS service), or is one with token authentication that this process cannot
    authenticate to: ``ray.init`` would retry for 20 s, print a warning a second and then fail without
    saying why. Where Ray's internals differ, nothing is checked. ``setting``, ``detail``: the ``[run]
    ray_address`` that led to ``address`` (default: ``address`` itself) and how (see :class:`RayAddressError`)."""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError, RpcError
    except ImportError:  # another Ray layout: ray.init says what it says
        return
    try:
        with _stderr_discarded():  # Ray's C++ client logs a refusal, in words the errors below put better
            GcsClient(address=address)
    except RpcError as exc:
        if getattr(exc, "rpc_code", None) == 12:  # gRPC's UNIMPLEMENTED: no GCS service there
            raise RayAddressError(setting or address, "a gRPC server answers there, but not a Ray head (another Ray "
                                  "process' port?); use the port `ray start --head --port=PORT` was given (6379 by "
                                  "default)", detail) from None
    except AuthenticationError:  # (ray.init sends a token to an explicit address only with RAY_AUTH_MODE=token)
        sends = os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"
        refused = "refused this process' token" if sends else "this process sends none (RAY_AUTH_MODE is not token)"
        raise RayAddressError(setting or address, f"the Ray head there uses token authentication and {refused}; "
                                                  f"{TOKEN_HELP}", detail) from None
    except Exception:  # anything else: ray.init retries and says
        return


@contextlib.contextmanager
def _stderr_discarded() -> Iterator[None]:
    """The process' standard error (file descriptor 2, where C++ code writes) goes nowhere meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def refused_token(exc: BaseException) -> bool:
    """Whether Ray's error (its causes included) says the cluster refused the token."""
    from tfnas.interrupts import exception_chain

    return any("InvalidAuthToken" in str(e) or type(e).__name__ == "AuthenticationError"
               for e in exception_chain(exc))


#: The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's head) answers with
#: a SETTINGS frame (RFC 9113, 3.4), anything else (a web server, a closed stream) does not.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _answers_http2(sock: Any) -> bool:
    """Whether the server on ``sock`` speaks HTTP/2 (a gRPC server does); True when Ray uses TLS
    (``RAY_USE_TLS``), where a plain-text preface cannot tell."""
    if os.environ.get("RAY_USE_TLS", "0").strip().lower() not in ("", "0", "false"):
        return True
    sock.sendall(_HTTP2_PREFACE)
    header = b""
    while len(header) < 9:  # the first frame's header: 3 bytes length, 1 byte type (4 = SETTINGS), ...
        chunk = sock.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == 0x04
