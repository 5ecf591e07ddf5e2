"""Authenticated messages on a real host: the operator's secrets file and the ``auth`` port.

:func:`load_secrets` reads the secrets file (JSON, as Mesos' credentials file) and refuses
one that is not a regular file private to its owner (``chmod 600``, owned by this user or
root).  :func:`authenticator` is the port factory (``impresario.security:authenticator``;
settings ``principal`` and ``secrets_file``): it signs with the actor's name as origin and
``time.time_ns()`` at the port's creation as incarnation, and knows every principal of the
file.  :func:`make_authenticator` and :class:`Auth` serve clients outside the actors.

See docs/security.md, 'Secrets'.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from typing import Any

from actors.config import ConfigError, setting
from actors.security.auth import Authenticator, Credentials, principal_error

#: A secrets file larger than this is refused (it holds names and secrets, not data).
MAX_SECRETS_FILE_BYTES = 2**20


class SecretsError(ValueError):
    """A secrets file that cannot be used, and why."""


def check_secrets_file(path: str, st: os.stat_result) -> None:
    """Refuse a file that is not private to the user this process runs as."""
    if not stat.S_ISREG(st.st_mode):
        raise SecretsError(f"{path}: not a regular file")
    uid = os.getuid()
    if st.st_uid not in (uid, 0):
        raise SecretsError(f"{path}: owned by uid {st.st_uid}; it must be owned by the user running "
                           f"impresario (uid {uid}) or by root")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SecretsError(f"{path}: its group or others may read or change it (mode {mode:04o}); "
                           f"make it private: chmod 600 {path}")


def parse_secrets(text: str | bytes, where: str = "secrets") -> Credentials:
    """The credentials of a secrets file's content (see the module's doc)."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise SecretsError(f"{where}: not JSON: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"credentials"} or not isinstance(doc["credentials"], list):
        raise SecretsError(f'{where}: expected {{"credentials": [{{"principal": ..., "secret": ...}}, ...]}}')
    creds = Credentials()
    for i, entry in enumerate(doc["credentials"]):
        here = f"{where}: credentials[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"principal", "secret"}:
            raise SecretsError(f'{here}: expected {{"principal": ..., "secret": ...}}')
        principal, secret = entry["principal"], entry["secret"]
        err = principal_error(principal)
        if err:
            raise SecretsError(f"{here}: {err}")
        if not isinstance(secret, str) or not secret:
            raise SecretsError(f"{here}: the secret of {principal!r} must be a non-empty string")
        if principal in creds:
            raise SecretsError(f"{here}: principal {principal!r} is listed twice")
        creds.add(principal, secret.encode())
    return creds


def load_secrets(path: str) -> Credentials:
    """Read and check a secrets file; :class:`SecretsError` says why one is refused."""
    try:
        # Non-blocking: a FIFO put in its place must not hang the actor (it is refused below).
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise SecretsError(f"{path}: cannot open it: {e.strerror}") from None
    try:
        # What was opened is what is checked (the path may change in between).
        check_secrets_file(path, os.fstat(fd))
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = fh.read(MAX_SECRETS_FILE_BYTES + 1)
    except OSError as e:
        raise SecretsError(f"{path}: cannot read it: {e.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_SECRETS_FILE_BYTES:
        raise SecretsError(f"{path}: larger than {MAX_SECRETS_FILE_BYTES} bytes")
    return parse_secrets(data, path)


def make_authenticator(principal: str, secrets_file: str, origin: str,
                       incarnation: int | None = None) -> Authenticator:
    """An :class:`~actors.security.auth.Authenticator` signing as ``principal`` from ``origin`` (an
    actor's name, or a client's), with the secrets of ``secrets_file``."""
    creds = load_secrets(secrets_file)
    if principal not in creds:
        raise SecretsError(f"{secrets_file}: no secret for principal {principal!r}")
    inc = time.time_ns() if incarnation is None else incarnation
    return Authenticator(creds.signer(principal, origin, inc), creds.verifier())


def authenticator(actor: Any, settings: dict[str, Any]) -> Authenticator:
    """The ``auth`` port factory on a real host (settings ``principal``, ``secrets_file``)."""
    principal = setting(settings, "principal", str)
    path = setting(settings, "secrets_file", str)
    try:
        return make_authenticator(principal, path, actor.name)
    except (SecretsError, ValueError) as e:
        raise ConfigError(f"auth: {e}") from None


#: The ``auth`` port on a real host, as an actor's Configure names it.
AUTH_PORT = ("auth", "impresario.security:authenticator")
#: The principals ``impresario local`` generates secrets for.
LOCAL_PRINCIPALS = ("master", "agent", "framework", "operator")


def generate_secrets(path: str, principals: tuple[str, ...] = LOCAL_PRINCIPALS) -> None:
    """Write a new secrets file at ``path`` (which must not exist), private to this user:
    one random 256-bit secret per principal."""
    doc = {"credentials": [{"principal": p, "secret": secrets.token_hex(32)} for p in principals]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")


class Auth:
    """Authentication for a cluster on real hosts: its secrets file, the settings and port
    that make an actor sign as a principal, and signing clients."""

    def __init__(self, secrets_file: str) -> None:
        self.secrets_file = os.path.abspath(secrets_file)
        self.principals = tuple(sorted(load_secrets(self.secrets_file).secrets))   # checked now

    def settings(self, principal: str) -> dict[str, Any]:
        """What an actor's settings need to sign as ``principal`` (with :data:`AUTH_PORT`)."""
        if principal not in self.principals:
            raise SecretsError(f"{self.secrets_file}: no secret for principal {principal!r}")
        return {"principal": principal, "secrets_file": self.secrets_file}

    def client(self, principal: str = "operator") -> Authenticator:
        """An authenticator for a program talking to the cluster from outside (a client of
        its own origin, so that two clients never look like one restarted)."""
        origin = f"{principal}-client-{os.getpid()}-{secrets.token_hex(4)}"
        return make_authenticator(principal, self.secrets_file, origin)
