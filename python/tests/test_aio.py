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
