"""An asyncio face for rs2p's sockets (beyond py2p).

``await s.get(key)``, ``await s.set(key, value)``, ``async for key in
s.keys()``. The calls that wait on the network (``get``, ``getitem``,
``connect``, ``leave``, ``close``) are native awaitables: futures of the
extension's tokio runtime, resolved on the running asyncio loop, with no
thread waiting for them. Calls that only take the node's lock for
microseconds (``set``, ``delete``, ``join``, ``unjoin``, ``keys``) run
inline; binding (``create``) runs on the loop's executor.
"""

import asyncio
import functools

from . import chord as _chord
from . import mesh as _mesh
from .base import protocol, flags  # noqa: F401
from .chord import _key

__all__ = ["chord_socket", "mesh_socket", "protocol", "flags"]


async def _run(fn, *args, **kwargs):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


class mesh_socket(object):
    """``rs2p.mesh.mesh_socket`` with awaitable network calls. Build it with
    ``await mesh_socket.create(...)`` (binding does not block the loop)."""
    _sync = _mesh.mesh_socket

    def __init__(self, sock):
        self.sync = sock

    @classmethod
    async def create(cls, *args, **kwargs):
        return cls(await _run(cls._sync, *args, **kwargs))

    def __getattr__(self, name):
        # cheap, non-blocking attributes (id, out_addr, status, ...)
        return getattr(self.sync, name)

    async def connect(self, addr, port, id=None):
        """True when connected, False when already connected or on another subnet"""
        return (await self.sync._sock.connect_async(addr, int(port))) is not None

    def send(self, *args, **kwargs):
        return self.sync.send(*args, **kwargs)

    async def recv(self, quantity=1):
        """Waits until a message is queued (a native awaitable: no polling,
        no thread); then as ``recv``: the message (quantity 1), or a list of
        up to ``quantity``, oldest first. Messages that registered handlers
        take never reach it. A close of the socket ends the wait: with
        nothing queued, ``recv`` then gives what ``recv`` gives on an empty
        queue (None for quantity 1, else an empty list)."""
        got = self.sync.recv(quantity)
        if got:
            return got
        raw = await self.sync._sock.recv_async()
        if raw is None:
            return got
        first = _mesh.message(raw, self.sync)
        if quantity == 1:
            return first
        more = self.sync.recv(quantity - 1)
        if quantity - 1 == 1:  # recv(1) gives a message or None, not a list
            more = [more] if more is not None else []
        return [first] + more

    async def close(self):
        if self.sync._closed:
            return
        self.sync._closed = True
        await self.sync._sock.close_async()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False


class chord_socket(mesh_socket):
    """``rs2p.chord.chord_socket`` with awaitable network calls."""
    _sync = _chord.chord_socket

    async def get(self, key, ifError=None, timeout=10):
        """The value at ``key``, or ``ifError`` on any exception (as py2p)"""
        try:
            return await self.getitem(key, timeout)
        except Exception:
            return ifError

    async def getitem(self, key, timeout=10):
        """As ``s[key]``: raises KeyError or socket.timeout"""
        return await self.sync._sock.get_async(_key(key), float(timeout))

    async def set(self, key, value):
        self.sync.set(key, value)

    async def delete(self, key):
        self.sync.__delitem__(key)

    async def keys(self):
        for k in list(self.sync.keys()):
            yield k

    async def join(self):
        self.sync.join()

    async def unjoin(self):
        self.sync.unjoin()

    async def leave(self, timeout=10):
        await self.sync._sock.leave_async(float(timeout))
