"""rs2p.aio: the same sockets with awaitable network calls."""

import asyncio

from rs2p import aio


async def main():
    a = await aio.chord_socket.create("127.0.0.1", 0)
    b = await aio.chord_socket.create("127.0.0.1", 0)
    async with a, b:
        await b.connect("127.0.0.1", a.out_addr[1])
        await a.join()
        await b.join()
        await a.set("greeting", "hello")
        while await b.get("greeting") is None:   # the store travels the ring
            await asyncio.sleep(0.01)
        print(await asyncio.gather(*(b.get("greeting") for _ in range(3))))
        print([key async for key in b.keys()])


asyncio.run(main())
