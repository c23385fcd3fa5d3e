"""gets/s and sets/s from Python: py2p 0.5.607's chord_socket against
rs2p's, on a local ring of 3, from 1 and 8 threads, and rs2p.aio.

Usage: python bench_py.py [--gets N] [--py2p-gets N] [--no-py2p] [--json FILE]
"""

import argparse
import asyncio
import socket
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def ring(cls, n=3):
    nodes = []
    for _ in range(n):
        port = free_port()
        nodes.append(cls("127.0.0.1", port))
        time.sleep(0.2)  # py2p's network thread must be serving before a peer dials it
    for i in range(1, n):
        nodes[i].connect("127.0.0.1", nodes[i - 1].out_addr[1])
    for x in nodes:
        x.join()
    end = time.time() + 30
    while not all(len(list(x.data_storing)) == n - 1 for x in nodes):
        if time.time() > end:
            raise SystemExit("the ring of %d did not form within 30 s" % n)
        time.sleep(0.05)
    return nodes


def timed(threads, n, work):
    """Operations per second of `threads` threads each running work(n, tid)."""
    ts = [threading.Thread(target=work, args=(n, "%d.%d" % (threads, j))) for j in range(threads)]
    t = time.time()
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    return n * threads / (time.time() - t)


def run(name, nodes, gets, keys=100):
    for i in range(keys):
        nodes[0].set("k%d" % i, "v%d" % i)
    reader = nodes[-1]
    end = time.time() + 30
    while time.time() < end and reader.get("k%d" % (keys - 1), timeout=2) != ("v%d" % (keys - 1)).encode():
        time.sleep(0.05)
    out = {}
    fails = [0]

    def read(n, tid):
        for i in range(n):
            if reader.get("k%d" % (i % keys), timeout=10) is None:
                fails[0] += 1

    def write(n, tid):
        for i in range(n):
            nodes[1].set("s%s-%d" % (tid, i), "x")

    for what, work in (("gets", read), ("sets", write)):
        for threads in (1, 8):
            fails[0] = 0
            n = gets // threads
            per_s = timed(threads, n, work)
            out["%s/s %d thread%s" % (what, threads, "s" if threads > 1 else "")] = (per_s, fails[0])
    for k, (v, f) in out.items():
        print("%-6s %-18s %10.0f%s" % (name, k, v, "  (%d failed)" % f if f else ""))
    return out


async def run_aio(gets, keys=100):
    from rs2p import aio

    nodes = [await aio.chord_socket.create("127.0.0.1", 0) for _ in range(3)]
    for i in range(1, 3):
        await nodes[i].connect("127.0.0.1", nodes[i - 1].out_addr[1])
    for x in nodes:
        await x.join()
    for i in range(keys):
        await nodes[0].set("k%d" % i, "v%d" % i)
    end = time.time() + 30
    while time.time() < end and await nodes[2].get("k%d" % (keys - 1)) is None:
        await asyncio.sleep(0.01)
    out = {}
    t = time.time()
    got = await asyncio.gather(*(nodes[2].get("k%d" % (i % keys)) for i in range(gets)))
    out["aio gets/s"] = (gets / (time.time() - t), sum(1 for g in got if g is None))
    t = time.time()
    for i in range(gets):
        await nodes[1].set("a%d" % i, "x")
    out["aio sets/s"] = (gets / (time.time() - t), 0)
    for k, (v, f) in out.items():
        print("%-6s %-18s %10.0f%s" % ("rs2p", k, v, "  (%d failed)" % f if f else ""))
    for x in nodes:
        await x.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gets", type=int, default=2000)
    ap.add_argument("--py2p-gets", type=int, default=200)
    ap.add_argument("--no-py2p", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    figures = {}
    import rs2p

    r = ring(rs2p.chord_socket)
    rs = run("rs2p", r, a.gets)
    for x in r:
        x.close()
    figures["rs2p"] = dict(rs, **asyncio.run(run_aio(a.gets)))
    if not a.no_py2p:
        import py2p.chord

        p = ring(py2p.chord.chord_socket)
        ps = run("py2p", p, a.py2p_gets)
        for x in p:
            x.close()
        figures["py2p"] = ps
        print("rs2p/py2p gets/s, 1 thread: %.0fx" % (rs["gets/s 1 thread"][0] / ps["gets/s 1 thread"][0]))
    if a.json:
        import json

        with open(a.json, "w") as f:
            json.dump(dict((impl, dict((k, {"per_s": round(v, 1), "failed": n}) for k, (v, n) in fig.items()))
                           for impl, fig in figures.items()), f, indent=1)


if __name__ == "__main__":
    main()
