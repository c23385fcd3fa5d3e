"""rs2p.aio: awaitable gets and sets that do not block the event loop."""

import asyncio

import pytest

from rs2p import aio


def test_aio_ring():
    async def main():
        a = await aio.chord_socket.create("127.0.0.1", 0)
        b = await aio.chord_socket.create("127.0.0.1", 0)
        try:
            await b.connect("127.0.0.1", a.out_addr[1])
            await a.join()
            await b.join()
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            t = asyncio.ensure_future(ticker())
            await a.set("k", "v")
            for _ in range(200):
                if await b.get("k") == b"v":
                    break
                await asyncio.sleep(0.02)
            assert await b.get("k") == b"v"
            with pytest.raises(KeyError):
                await b.getitem("missing")
            keys = [k async for k in b.keys()]
            assert b"k" in keys
            t.cancel()
            assert ticks > 0  # the loop kept running during the gets
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_aio_many_gets_gathered_and_errors():
    import socket

    async def main():
        a = await aio.chord_socket.create("127.0.0.1", 0)
        b = await aio.chord_socket.create("127.0.0.1", 0)
        lone = await aio.chord_socket.create("127.0.0.1", 0)
        try:
            assert await b.connect("127.0.0.1", a.out_addr[1]) is True
            await a.join()
            await b.join()
            for i in range(20):
                await a.set("g%d" % i, "v%d" % i)
            for _ in range(200):
                if await b.get("g19") == b"v19":
                    break
                await asyncio.sleep(0.02)
            got = await asyncio.gather(*(b.get("g%d" % (i % 20)) for i in range(1000)))
            assert got == [("v%d" % (i % 20)).encode() for i in range(1000)]
            with pytest.raises(socket.timeout):
                await lone.getitem("k", timeout=0.5)
            assert await lone.get("k", b"dflt", timeout=0.5) == b"dflt"
            await a.leave(5)
            assert a.leeching
        finally:
            for s in (a, b, lone):
                await s.close()
            await a.close()  # a second close does nothing

    asyncio.run(main())


def test_aio_recv_awaits_a_message_without_blocking_the_loop():
    async def main():
        a = await aio.mesh_socket.create("127.0.0.1", 0)
        b = await aio.mesh_socket.create("127.0.0.1", 0)
        try:
            assert await b.connect("127.0.0.1", a.out_addr[1])
            waiter = asyncio.ensure_future(a.recv())
            # Nothing sent yet: the awaitable is pending and the loop runs.
            for _ in range(5):
                await asyncio.sleep(0.01)
            assert not waiter.done()
            for _ in range(500):  # until a knows b (its handshake came in)
                if a.routing_table:
                    break
                await asyncio.sleep(0.01)
            b.send(b"one")
            msg = await asyncio.wait_for(waiter, 15)
            assert msg.packets[1] == b"one"
            b.send(b"two")
            b.send(b"three")
            got = []
            while len(got) < 2:
                more = await asyncio.wait_for(a.recv(2), 15)
                got.extend(m.packets[1] for m in more)
            assert got == [b"two", b"three"]
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_aio_recv_ends_when_the_socket_closes():
    async def main():
        a = await aio.mesh_socket.create("127.0.0.1", 0)
        waiter = asyncio.ensure_future(a.recv())
        waiters = asyncio.ensure_future(a.recv(3))
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert not waiter.done() and not waiters.done()
        await a.close()
        # Closed with nothing queued: the waits end as recv on an empty queue.
        assert await asyncio.wait_for(waiter, 15) is None
        assert await asyncio.wait_for(waiters, 15) == []
        # And a recv awaited after the close returns at once.
        assert await asyncio.wait_for(a.recv(), 15) is None

    asyncio.run(main())
