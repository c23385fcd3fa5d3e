"""Shared helpers: bounded polling (never fixed sleeps for correctness),
free ports for py2p (which cannot bind port 0 usefully), rings."""

import signal
import socket
import time

import pytest


def wait_until(pred, timeout=15.0, interval=0.02, what="condition"):
    """Polls `pred` until it is truthy; fails the test after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def seeding(node):
    return len(list(node.data_storing))


@pytest.fixture
def sigint_handled():
    """Python's own Ctrl-C handler for the test. A process started as a
    background job without job control (`cmd &` in a script, as CI runners
    may) inherits SIGINT ignored; Python then installs no handler, and
    `_thread.interrupt_main()` does nothing at all, so a test of Ctrl-C
    would wait out the whole call instead."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.fixture
def ring3():
    """Three joined rs2p chord_sockets on 127.0.0.1 ephemeral ports."""
    from rs2p.chord import chord_socket

    nodes = [chord_socket("127.0.0.1", 0) for _ in range(3)]
    try:
        nodes[1].connect("127.0.0.1", nodes[0].out_addr[1])
        nodes[2].connect("127.0.0.1", nodes[1].out_addr[1])
        for n in nodes:
            n.join()
        wait_until(lambda: all(seeding(n) == 2 for n in nodes), what="a ring of 3 seeding nodes")
        yield nodes
    finally:
        for n in nodes:
            n.close()
