"""The master's HTTP endpoints (Mesos' paths), answered from its actors.

Every view is the master actor's answer to a ``view`` query (:func:`actors.master.views.render`,
the same code that writes the simulator's ``state.json``), asked through one of a few
external contexts (:class:`~impresario.realhost.http.Readers`); ``/metrics/snapshot``
adds the allocator's figures.  The caller's principal travels with the query and the
master filters by its ACLs.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from actors.master.views import PAGE, merge
from actors.security.acl import ACCESS_SANDBOXES, VIEW_AGENTS

from .files import Files
from .http import Door, HttpAuth, HttpError, Readers, Request, Response, Stream, json_response
from .system import Client, KernelError

#: Path -> the master's view (as :data:`actors.master.views.ENDPOINTS` names it).
MASTER_VIEWS = {
    "/state": "state", "/state.json": "state", "/state-summary": "state-summary", "/frameworks": "frameworks",
    "/slaves": "slaves", "/agents": "slaves", "/tasks": "tasks", "/tasks.json": "tasks", "/roles": "roles",
    "/roles.json": "roles", "/quota": "quota", "/weights": "weights", "/flags": "flags", "/version": "version",
}
#: Views whose long lists are fetched a page at a time (:func:`actors.master.views.part`).
PAGED = frozenset({"state", "frameworks"})
#: How long one answer may take before the door says 503.
QUERY_TIMEOUT = 30.0


def master_routes(readers: Readers, master: Any, allocator: Any, files: Files,
                  leader_url: Callable[[], str] | None = None) -> dict[str, Callable[[Request], Any]]:
    """The master's routes: views, metrics (JSON and Prometheus), files, health, redirect
    (``leader_url``: where the leading master's HTTP endpoints are)."""

    def failed(e: KernelError) -> HttpError:
        text = str(e)
        if text.startswith("bad request: "):
            return HttpError(400, text[len("bad request: "):])
        return HttpError(503, f"the master did not answer: {text}")

    def ask(c: Client, addr: Any, what: str, **args: Any) -> Any:
        try:
            return c.query(addr, what, QUERY_TIMEOUT, **args)
        except KernelError as e:
            raise failed(e) from None

    def view_of(c: Client, endpoint: str, params: dict[str, str], principal: str | None) -> bytes:
        try:
            return c.view(master, QUERY_TIMEOUT, endpoint=endpoint, params=params, principal=principal)
        except KernelError as e:
            raise failed(e) from None

    def in_pages(c: Client, endpoint: str, params: dict[str, str], principal: str | None) -> bytes:
        def one(p: dict[str, str]) -> bytes:
            return view_of(c, endpoint, p, principal)

        return in_parts(one, params)

    def view(endpoint: str) -> Callable[[Request], Response]:
        fetch = in_pages if endpoint in PAGED else view_of

        def handler(r: Request) -> Response:
            _only(r, "GET", "HEAD")
            params = {k: v for k, v in sorted(r.params.items()) if k not in ("jsonp", "part", "offset")}
            key = (endpoint, tuple(params.items()), r.principal)
            body = readers.read(key, lambda c: fetch(c, endpoint, params, r.principal))
            return gzipped(r, body)
        return handler

    def snapshot(r: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        def fetch(c: Client) -> Any:
            mine = json.loads(gzip.decompress(view_of(c, "metrics", {}, r.principal)))
            theirs = ask(c, allocator, "metrics")
            hist = ask(c, allocator, "histograms")
            return merge(mine, theirs), hist
        return readers.read(("metrics",), fetch)

    def metrics_snapshot(r: Request) -> Response:
        _only(r, "GET", "HEAD")
        return json_response(snapshot(r)[0])

    def prometheus(r: Request) -> Response:
        from impresario.prometheus import exposition

        _only(r, "GET", "HEAD")
        snap, hist = snapshot(r)
        body, content_type = exposition(snap, hist.get("allocation_run_seconds"))
        return Response(body, content_type=content_type)

    def health(r: Request) -> Response:
        _only(r, "GET", "HEAD")
        readers.read(("health",), lambda c: view_of(c, "health", {}, None))
        return Response(b"", content_type="text/plain")

    def redirect(r: Request) -> Response:
        _only(r, "GET", "HEAD")
        if leader_url is None:
            raise HttpError(503, "no leading master is known")
        return Response(b"", status=307, content_type="text/plain", headers={"Location": leader_url()})

    routes: dict[str, Callable[[Request], Any]] = {"/redirect": redirect, "/master/redirect": redirect}
    for path, endpoint in MASTER_VIEWS.items():
        routes[path] = routes["/master" + path] = view(endpoint)
    routes.update({"/metrics/snapshot": metrics_snapshot, "/metrics": prometheus, "/health": health,
                   "/master/health": health})
    routes.update(file_routes(files))
    return routes


def in_parts(fetch: Callable[[dict[str, str]], bytes], params: dict[str, str]) -> bytes:
    """A view with long lists (``/state``, ``/frameworks``) fetched a page per message
    (``fetch(params)`` answers one message's gzip-compressed JSON), so that the master
    handles other messages between pages; in one message where it is small (then it is a
    snapshot of one instant).  The whole, gzip-compressed JSON."""
    head = orjson.loads(gzip.decompress(fetch({**params, "part": "head"})))
    sizes = [("slaves", head.get("_parts", {}).get("slaves", 0), head.get("slaves"))]
    for f in head.get("frameworks", []) + head.get("completed_frameworks", []):
        for name, n in f.pop("_parts", {}).items():
            sizes.append((f"{f['id']}/{name}", n, f[name]))
    if sum(n for _, n, _ in sizes) <= PAGE:
        return fetch(params)
    head.pop("_parts", None)
    for which, n, into in sizes:
        for offset in range(0, n, PAGE):
            into.extend(orjson.loads(gzip.decompress(fetch({"part": which, "offset": str(offset)}))))
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    return packer.compress(orjson.dumps(head)) + packer.flush()


def gzipped(r: Request, body: bytes) -> Response:
    """A gzip-compressed JSON body as the client takes it: as it is where it accepts gzip,
    else decompressed here."""
    if "gzip" in (r.headers.get("Accept-Encoding") or "").lower():
        return Response(body, headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return Response(gzip.decompress(body), headers={"Vary": "Accept-Encoding"})


def file_routes(files: Files, allowed: Callable[[Request, str], None] | None = None) -> dict[str, Any]:
    """``/files/browse``, ``/files/read`` and ``/files/download`` over ``files``
    (``allowed(request, real path)`` raises HttpError 403 where the caller may not)."""

    def check(r: Request, real: str) -> None:
        if allowed is not None:
            allowed(r, real)

    def browse(r: Request) -> Response:
        _only(r, "GET", "HEAD")
        found = files.find(r.params.get("path"))
        check(r, found.real)
        return json_response(files.browse(r.params.get("path")))

    def read(r: Request) -> Response:
        _only(r, "GET", "HEAD")
        found = files.find(r.params.get("path"))
        check(r, found.real)
        offset = _integer(r, "offset", 0)
        length = _integer(r, "length", -1)
        return json_response(files.read(r.params.get("path"), offset, length if length >= 0 else None))

    def download(r: Request) -> Stream:
        _only(r, "GET")
        real, name = files.open_for_download(r.params.get("path"))
        check(r, real)
        fh = open(real, "rb")
        return Stream(_chunks(fh), headers={"Content-Disposition": f'attachment; filename="{_quote(name)}"'})

    return {"/files/browse": browse, "/files/browse.json": browse, "/files/read": read,
            "/files/read.json": read, "/files/download": download, "/files/download.json": download}


def _chunks(fh: Any, size: int = 256 * 1024) -> Iterator[bytes]:
    try:
        while True:
            data = fh.read(size)
            if not data:
                return
            yield data
    finally:
        fh.close()


def _quote(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _only(r: Request, *methods: str) -> None:
    if r.method not in methods:
        raise HttpError(405, f"{r.method} is not allowed here (only {', '.join(methods)})")


def _integer(r: Request, key: str, default: int) -> int:
    text = r.params.get(key)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise HttpError(400, f"{key} must be an integer, not {text!r}") from None


def reader_pool(system: Any, auth: Any, principal: str, size: int = 4, max_age: float = 0.25) -> Readers:
    """External contexts of ``system`` for request threads, each signing as ``principal``
    with its own origin where the cluster signs."""

    def make() -> tuple[Client, Callable[[], None]]:
        cm = system.asys.private()
        context = cm.__enter__()
        client = Client(context, auth.client(principal) if auth is not None else None)
        return client, lambda: cm.__exit__(None, None, None)

    return Readers(make, size=size, max_age=max_age)


class _LiveSecrets:
    """The secrets file's principals and secrets, read again when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp: tuple[int, int] | None = None
        self.secrets: dict[str, bytes] = {}

    def get(self, principal: str, default: Any = None) -> Any:
        from impresario.security import SecretsError, load_secrets

        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self.stamp:
                self.secrets, self.stamp = dict(load_secrets(self.path).secrets), stamp
        except (OSError, SecretsError):
            pass   # keep what was read last
        return self.secrets.get(principal, default)


def http_auth(auth: Any) -> HttpAuth:
    """The door's authentication from the cluster's secrets (read again when they change)."""
    return HttpAuth(_LiveSecrets(auth.secrets_file))  # type: ignore[arg-type]


def serve_master(door: Door, system: Any, master: Any, allocator: Any, auth: Any, principal: str,
                 log_path: str | None) -> Door:
    """Serve the master's endpoints at ``door`` (bound already).  With the cluster's
    secrets (``auth``) every request authenticates."""
    files = Files()
    if log_path:
        files.attach("/master/log", log_path)
    readers = reader_pool(system, auth, principal)
    door.routes.update(master_routes(readers, master, allocator, files, lambda: door.url))
    door.auth = None if auth is None else http_auth(auth)
    door.on_stop.append(readers.close)
    return door.start()


#: Path -> the agent's view (as :data:`actors.agent.views.ENDPOINTS` names it).
AGENT_VIEWS = {
    "/state": "state", "/state.json": "state", "/slave(1)/state": "state", "/slave(1)/state.json": "state",
    "/flags": "flags", "/slave(1)/flags": "flags", "/containers": "containers",
    "/monitor/statistics": "statistics", "/monitor/statistics.json": "statistics",
}


def agent_routes(readers: Readers, agent: Any, files: Files,
                 sandbox_user: Callable[[str], str | None] | None = None,
                 acl: Any = None) -> dict[str, Callable[[Request], Any]]:
    """An agent's routes: views, metrics, health and its sandboxes and log under /files
    (``access_sandboxes`` checked for the user of the sandbox's framework where ``acl``)."""

    def view_of(c: Client, endpoint: str) -> bytes:
        try:
            return c.view(agent, QUERY_TIMEOUT, endpoint=endpoint)
        except KernelError as e:
            raise HttpError(503, f"the agent did not answer: {e}") from None

    def view(endpoint: str) -> Callable[[Request], Response]:
        def handler(r: Request) -> Response:
            _only(r, "GET", "HEAD")
            if acl is not None and not acl.check(VIEW_AGENTS, r.principal):
                raise HttpError(403, f"principal {r.principal!r} may not view agents")
            return gzipped(r, readers.read((endpoint,), lambda c: view_of(c, endpoint)))
        return handler

    def snapshot() -> dict[str, Any]:
        return json.loads(gzip.decompress(readers.read(("metrics",), lambda c: view_of(c, "metrics"))))

    def metrics_snapshot(r: Request) -> Response:
        _only(r, "GET", "HEAD")
        return json_response(snapshot())

    def prometheus(r: Request) -> Response:
        from impresario.prometheus import exposition

        _only(r, "GET", "HEAD")
        body, content_type = exposition(snapshot())
        return Response(body, content_type=content_type)

    def health(r: Request) -> Response:
        _only(r, "GET", "HEAD")
        readers.read(("health",), lambda c: view_of(c, "health"))
        return Response(b"", content_type="text/plain")

    def allowed(r: Request, real: str) -> None:
        if acl is None or sandbox_user is None:
            return
        user = sandbox_user(real)
        if user is None:
            return   # the agent's own log
        decision = acl.check(ACCESS_SANDBOXES, r.principal, user)
        if not decision:
            raise HttpError(403, decision.reason)

    routes: dict[str, Callable[[Request], Any]] = {p: view(e) for p, e in AGENT_VIEWS.items()}
    routes.update({"/metrics/snapshot": metrics_snapshot, "/metrics": prometheus, "/health": health,
                   "/slave(1)/health": health})
    routes.update(file_routes(files, allowed))
    return routes


def sandbox_user_finder(readers: Readers, agent: Any) -> Callable[[str], str | None]:
    """The user of the framework whose sandbox holds a path (from the agent's state), or
    None for a path in no sandbox."""

    def user_of(real: str) -> str | None:
        parts = real.split("/")
        if "frameworks" not in parts:
            return None
        i = parts.index("frameworks")
        if i + 1 >= len(parts):
            return ""
        fid = parts[i + 1]
        state = json.loads(gzip.decompress(readers.read(("state",), lambda c: c.view(agent, QUERY_TIMEOUT,
                                                                                     endpoint="state"))))
        for f in state.get("frameworks", []):
            if f.get("id") == fid:
                return str(f.get("user") or "")
        return ""

    return user_of


def serve_agent(door: Door, system: Any, agent: Any, auth: Any, principal: str, work_dir: str,
                log_path: str | None, acl: Any = None) -> Door:
    """Serve an agent's endpoints at ``door`` (bound already): its views, and its sandboxes
    (under their real paths, as its ``/state`` names them) and log under ``/files``."""
    files = Files()
    root = os.path.realpath(os.path.join(work_dir, "slaves"))   # every sandbox (actors.agent.paths)
    files.attach(root, root)
    if log_path:
        files.attach("/slave/log", log_path)
    readers = reader_pool(system, auth, principal)
    door.routes.update(agent_routes(readers, agent, files, sandbox_user_finder(readers, agent), acl))
    door.auth = None if auth is None else http_auth(auth)
    door.on_stop.append(readers.close)
    return door.start()
