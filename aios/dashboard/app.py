"""The dashboard's HTTP side (FastAPI): the page, its shipped assets, each page's data as
JSON, and a WebSocket that pushes a page's data whenever the log changes.

Read-only: every route is a GET or the WebSocket, which only listens for which page to send.
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from aios import __version__
from aios.dashboard.live import LiveData
from aios.dashboard.pages import PAGES

STATIC = Path(str(files("aios.dashboard") / "static"))
PUSH_TIMEOUT_S = 20.0  # how long a connection waits for a change before looking again


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def create_app(
    live: LiveData, host: str = "127.0.0.1", allowed_hosts: tuple[str, ...] = ()
) -> FastAPI:
    app = FastAPI(
        title="AIOS dashboard",
        version=__version__,
        description="Read-only views of one AIOS home.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts(host, allowed_hosts))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/pages/{name}")
    def page(name: str) -> Response:
        """One page's data; ``version`` grows whenever the data was rebuilt."""
        if name not in PAGES:
            raise HTTPException(404, f"no page {name!r}; pages: {', '.join(PAGES)}")
        return _json(live.page(name))

    @app.get("/api/health")
    def health() -> Response:
        snapshot = live.snapshot
        problem = live.problem()
        return _json(
            {
                "ok": problem is None,
                "version": snapshot.version,
                "built": snapshot.built,
                "error": problem,
            }
        )

    @app.websocket("/ws")
    async def updates(socket: WebSocket) -> None:
        """``?page=NAME``; send ``{"page": NAME}`` to switch. The page's data comes at once and
        after every change."""
        origin = socket.headers.get("origin")
        if origin is not None and not _same_origin(origin, socket.headers.get("host", "")):
            # Another site open in the same browser must not read the pages.
            await socket.close(code=4403, reason="cross-origin WebSocket refused")
            return
        await socket.accept()
        name = socket.query_params.get("page", "overview")
        choices: asyncio.Queue[str | None] = asyncio.Queue()
        reader = asyncio.create_task(_read_choices(socket, choices))
        version = -1
        try:
            while True:
                if name not in PAGES:
                    # A close reason has room for 123 bytes: the name is not repeated.
                    await socket.close(code=4404, reason="no such page")
                    return
                if version != live.snapshot.version:
                    message = live.page(name)
                    version = message["version"]
                    await socket.send_text(orjson.dumps(message).decode())
                choice = asyncio.ensure_future(choices.get())
                change = asyncio.ensure_future(live.changed(version, PUSH_TIMEOUT_S))
                done, pending = await asyncio.wait(
                    {choice, change}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                if choice in done:
                    wanted = choice.result()
                    if wanted is None:
                        return  # the browser went away
                    name, version = wanted, -1
        except (WebSocketDisconnect, RuntimeError):
            return  # closed while sending
        finally:
            reader.cancel()

    return app


async def _read_choices(socket: WebSocket, choices: asyncio.Queue[str | None]) -> None:
    """Put each page the browser asks for on ``choices``; None once it has gone (or sent
    something that is not a text frame)."""
    try:
        while True:
            message = await socket.receive()
            text = message.get("text")
            if message.get("type") == "websocket.disconnect" or text is None:
                break
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                wanted = orjson.loads(text).get("page")
                if isinstance(wanted, str):
                    await choices.put(wanted)
    except Exception:  # a broken connection is a browser gone
        pass
    await choices.put(None)


def _same_origin(origin: str, host: str) -> bool:
    """Whether a browser's ``Origin`` is this server as the browser addressed it."""
    return origin.lower() in (f"http://{host}".lower(), f"https://{host}".lower())


LOOPBACK = ("127.0.0.1", "::1", "localhost")
WILDCARDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address the dashboard listens on) is reachable from this machine
    only."""
    return host in LOOPBACK or host.startswith("127.")


def _as_host_header(name: str) -> str:
    """How a browser writes ``name`` in a Host header (IPv6 literals in brackets), lowercase."""
    name = name.split("%", 1)[0].lower()  # no zone index in a URL's host
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def own_names() -> set[str]:
    """This machine's host names and interface addresses."""
    import socket

    import psutil

    names = {socket.gethostname(), socket.getfqdn()}
    for addresses in psutil.net_if_addrs().values():
        names.update(a.address for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6))
    return {n for n in names if n}


def trusted_hosts(host: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Host names the dashboard answers to: loopback names, the address it listens on, and
    ``extra`` (``[dashboard] allowed_hosts``); listening on every address (``0.0.0.0``,
    ``::``), the machine's own names and addresses. Anything else, such as a DNS-rebinding
    name pointing at this machine, is refused, and so is a WebSocket from any other origin
    (the Origin must be the Host, which must be one of these)."""
    names = set(LOOPBACK)
    if host in WILDCARDS:
        names.update(own_names())
    else:
        names.add(host)
    names.update(extra)
    return sorted({_as_host_header(n) for n in names})
