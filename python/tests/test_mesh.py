"""rs2p.mesh.mesh_socket: messages, handlers, recv, Ctrl-C."""

import _thread
import socket
import threading
import time

import pytest

from rs2p.base import flags, protocol
from rs2p.mesh import mesh_socket

from conftest import wait_until


@pytest.fixture
def pair():
    a = mesh_socket("127.0.0.1", 0)
    b = mesh_socket("127.0.0.1", 0)
    try:
        assert b.connect("127.0.0.1", a.out_addr[1]) is True
        wait_until(lambda: len(a.routing_table) == 1 and len(b.routing_table) == 1, what="a linked pair")
        yield a, b
    finally:
        a.close()
        b.close()


def test_send_and_recv(pair):
    a, b = pair
    assert a.recv() is None
    assert a.recv(5) == []
    b.send("one", b"two")
    b.send("three")
    got = []
    wait_until(lambda: got.extend(a.recv(10)) or len(got) >= 2, what="two messages")
    assert got[0].packets == [flags.broadcast, b"one", b"two"]
    assert got[1].packets[1:] == [b"three"]
    assert got[0].sender == b.id
    assert isinstance(got[0].id, bytes)
    # a second connect to the same peer is no error, as in py2p, and the
    # pair ends with one link
    b.connect("127.0.0.1", a.out_addr[1])
    wait_until(lambda: len(a.routing_table) == 1 and len(b.routing_table) == 1, what="one link")


def test_handler_consumes_and_replies(pair):
    a, b = pair
    seen = []

    def handler(msg, conn):
        seen.append(threading.current_thread().name)
        if msg.packets[1] == b"ping":
            msg.reply(b"pong")
            return True

    a.register_handler(handler)
    b.send("ping")
    m = wait_until(lambda: b.recv(), what="the reply")
    assert m.packets == [flags.whisper, b"pong"]
    assert a.recv() is None
    b.send("other")
    m = wait_until(lambda: a.recv(), what="an unhandled message in recv")
    assert m.packets[1] == b"other"
    # handlers run on the dispatcher thread, never on a runtime thread
    assert set(seen) == {"rs2p-handlers"}


def test_handler_send_whispers_back(pair):
    a, b = pair

    def handler(msg, conn):
        conn.send(flags.whisper, flags.whisper, b"success")
        return True

    a.register_handler(handler)
    b.send("test")
    m = wait_until(lambda: b.recv(), what="the whisper")
    assert m.packets == [flags.whisper, b"success"]


def test_handler_exception_is_counted_not_fatal(pair):
    a, b = pair

    def bad(msg, conn):
        raise RuntimeError("boom")

    a.register_handler(bad)
    b.send("x")
    wait_until(lambda: a.handler_errors == 1, what="the error counted")
    m = wait_until(lambda: a.recv(), what="the message still delivered")
    assert m.packets[1] == b"x"
    with pytest.raises(TypeError):
        a.register_handler(42)


def test_subnets_do_not_link():
    with mesh_socket("127.0.0.1", 0, prot=protocol("one", "Plaintext")) as f, \
            mesh_socket("127.0.0.1", 0, prot=protocol("two", "Plaintext")) as g:
        assert g.connect("127.0.0.1", f.out_addr[1]) is False
        assert len(f.routing_table) == len(g.routing_table) == 0


def test_ssl_pair_links():
    prot = protocol("", "SSL")
    with mesh_socket("127.0.0.1", 0, prot=prot) as f, mesh_socket("127.0.0.1", 0, prot=prot) as g:
        assert g.connect("127.0.0.1", f.out_addr[1])
        g.send(b"hi")
        m = wait_until(lambda: f.recv(), what="a message over TLS")
        assert m.packets[1] == b"hi"


def test_ctrl_c_interrupts_a_blocking_call(sigint_handled):
    # A listener that never handshakes: connect waits up to 5 s for it.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        with mesh_socket("127.0.0.1", 0) as s:
            timer = threading.Timer(0.3, _thread.interrupt_main)
            timer.start()
            t = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                s.connect("127.0.0.1", srv.getsockname()[1])
            assert time.monotonic() - t < 2
            timer.join()
    finally:
        srv.close()



def test_awaiting_ids_lists_a_link_until_its_handshake():
    with mesh_socket("127.0.0.1", 0) as s:
        assert s.awaiting_ids == []
        raw = socket.create_connection(("127.0.0.1", s.out_addr[1]))
        try:
            # Connected, but it never sends a handshake.
            links = wait_until(lambda: s.awaiting_ids, what="the raw link to await its handshake")
            assert links == [(False, None)] and links[0].outgoing is False and links[0].addr is None
            assert s.routing_table == {}
        finally:
            raw.close()
        wait_until(lambda: s.awaiting_ids == [], what="the closed raw link to be forgotten")


def test_debug_level_prints_as_py2p(capsys):
    with mesh_socket("127.0.0.1", 0, debug_level=1) as f, mesh_socket("127.0.0.1", 0) as g:
        assert f.connect("127.0.0.1", g.out_addr[1])
        out = capsys.readouterr().out
        lines = [line for line in out.splitlines() if "Connected to node" in line]
        # py2p's format: the port, then the event; only the debug_level=1 socket prints.
        assert len(lines) == 1 and lines[0].startswith("%d " % f.out_addr[1]), out
        assert g.id.decode() in lines[0]
        assert f.disconnect(g.id)
        assert "Connection to node %s has been closed" % g.id.decode() in capsys.readouterr().out
