"""An asyncio face for rs2p's sockets (beyond py2p).

``await s.get(key)``, ``await s.set(key, value)``, ``async for key in
s.keys()``: each network call runs the blocking call (which releases the GIL)
on the event loop's default executor, so the loop is never blocked.

Head start: the calls go through executor threads; native awaitables over
the tokio runtime (no thread per waiting call) are still to do.
"""

import asyncio
import functools

from . import chord as _chord
from . import mesh as _mesh
from .base import protocol, flags  # noqa: F401

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
        return await _run(self.sync.connect, addr, port, id)

    def send(self, *args, **kwargs):
        return self.sync.send(*args, **kwargs)

    async def recv(self, quantity=1, poll=0.01):
        """Waits until at least one message is queued; then as ``recv``."""
        while True:
            got = self.sync.recv(quantity)
            if got:
                return got
            await asyncio.sleep(poll)

    async def close(self):
        await _run(self.sync.close)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False


class chord_socket(mesh_socket):
    """``rs2p.chord.chord_socket`` with awaitable network calls."""
    _sync = _chord.chord_socket

    async def get(self, key, ifError=None, timeout=10):
        return await _run(self.sync.get, key, ifError, timeout)

    async def getitem(self, key, timeout=10):
        """As ``s[key]``: raises KeyError or socket.timeout"""
        return await _run(self.sync.__getitem__, key, timeout)

    async def set(self, key, value):
        return await _run(self.sync.set, key, value)

    async def delete(self, key):
        return await _run(self.sync.__delitem__, key)

    async def keys(self):
        for k in await _run(lambda: list(self.sync.keys())):
            yield k

    async def join(self):
        await _run(self.sync.join)

    async def unjoin(self):
        await _run(self.sync.unjoin)

    async def leave(self, timeout=10):
        await _run(self.sync.leave, timeout)
