"""The py2p 0.5.607 half of `rs2p bench`: the same workload on a ring of real
py2p chord nodes in one process. Prints one JSON object on stdout.

Usage: python py2p_bench.py NODES SETS GETS VALUE_SIZE
"""
import json
import os
import socket
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[int((len(sorted_values) - 1) * p)]


def main():
    n, sets, gets, size = (int(x) for x in sys.argv[1:5])
    from py2p import chord

    nodes = []
    for _ in range(n):
        for _attempt in range(20):
            try:
                nodes.append(chord.chord_socket("127.0.0.1", free_port()))
                break
            except OSError:
                time.sleep(0.05)
    # py2p's network thread can die if a peer connects too early (D26).
    time.sleep(0.5)
    for s in nodes:
        s.join()
    for i in range(1, n):
        nodes[i].connect("127.0.0.1", nodes[i // 2].out_addr[1])
    # Settle: every node sees the others seeding (bounded).
    want = min(n - 1, 2)
    end = time.time() + 20
    while time.time() < end:
        if all(len(tuple(s.data_storing)) >= want for s in nodes):
            break
        time.sleep(0.05)
    time.sleep(1.0)
    value = b"v" * size
    keys = [("bench-key-%d" % i).encode() for i in range(sets)]
    t0 = time.perf_counter()
    for i, k in enumerate(keys):
        nodes[i % n].set(k, value)
    set_elapsed = time.perf_counter() - t0
    time.sleep(1.0)
    lat = []
    ok = 0
    t0 = time.perf_counter()
    for i in range(gets):
        k = keys[(i * 7) % sets]
        t = time.perf_counter()
        v = nodes[(i * 3) % n].get(k, None, timeout=5)
        lat.append((time.perf_counter() - t) * 1e6)
        if v == value:
            ok += 1
    get_elapsed = time.perf_counter() - t0
    lat.sort()
    out = {
        "nodes": n,
        "sets": sets,
        "gets": gets,
        "set_per_s": sets / set_elapsed if set_elapsed > 0 else 0.0,
        "get_per_s": gets / get_elapsed if get_elapsed > 0 else 0.0,
        "get_p50_us": pct(lat, 0.50),
        "get_p99_us": pct(lat, 0.99),
        "gets_correct": ok,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    # py2p's sockets take long to close one by one; the process is done.
    os._exit(0)


if __name__ == "__main__":
    main()
