"""rs2p.chord.chord_socket on its own: a ring of three in one process."""

import socket
import threading
import time

import pytest

import rs2p
from rs2p import base, chord, mesh
from rs2p.chord import chord_socket

from conftest import wait_until


def test_layout():
    assert rs2p.chord_socket is chord.chord_socket
    assert rs2p.mesh_socket is mesh.mesh_socket
    assert rs2p.protocol is base.protocol
    assert isinstance(rs2p.__version__, str)
    assert chord.default_protocol == base.protocol("chord", "Plaintext")
    assert base.flags.whisper == b"\x02"


def test_protocol_namedtuple_and_id():
    p = base.protocol("chord", "Plaintext")
    assert p.subnet == "chord" and p.encryption == "Plaintext"
    assert tuple(p) == ("chord", "Plaintext")
    assert isinstance(p.id, bytes)


def test_protocol_id_matches_py2p_and_node():
    py2p_base = pytest.importorskip("py2p.base")
    for sub, enc in [("chord", "Plaintext"), ("", "SSL"), ("x", "Plaintext")]:
        assert base.protocol(sub, enc).id == py2p_base.protocol(sub, enc).id
    with chord_socket("127.0.0.1", 0) as s:
        assert s._sock.protocol_id.encode() == s.protocol.id


def test_identity_and_context_manager():
    with chord_socket("127.0.0.1", 0) as s:
        assert isinstance(s.id, bytes) and len(s.id) > 40
        assert s.id_10 == base.from_base_58(s.id)
        host, port = s.out_addr
        assert host == "127.0.0.1" and port > 0
        assert s.addr == s.out_addr
        assert s.status == "Nominal"
        assert s.leeching
        s.join()
        assert not s.leeching
    assert s._closed
    s.close()  # a second close does nothing


def test_accepts_py2p_protocol_object():
    py2p_base = pytest.importorskip("py2p.base")
    with chord_socket("127.0.0.1", 0, prot=py2p_base.protocol("chord", "Plaintext")) as s:
        assert s.protocol == ("chord", "Plaintext")


def test_bad_arguments():
    with pytest.raises(ValueError):
        chord_socket("127.0.0.1", 0, prot=base.protocol("chord", "ROT13"))
    with pytest.raises(TypeError):
        chord_socket("127.0.0.1", "0")
    with pytest.raises(TypeError):
        chord_socket("127.0.0.1", 0, no_such_option=1)
    with pytest.raises(TypeError):
        chord_socket("127.0.0.1", 0, prot=42)
    with chord_socket("127.0.0.1", 0) as s:
        with pytest.raises(OSError):
            chord_socket("127.0.0.1", s.out_addr[1])


def test_connect_refused_raises_oserror():
    from conftest import free_port

    with chord_socket("127.0.0.1", 0) as s:
        with pytest.raises(OSError):
            s.connect("127.0.0.1", free_port())


def test_set_get_delete_through_different_nodes(ring3):
    a, b, c = ring3
    a["alpha"] = "one"
    b.set(b"beta", b"two")
    c[b"\x00bin"] = b"\xff\x00"
    assert wait_until(lambda: c.get("alpha") == b"one", what="alpha from c")
    assert b["alpha"] == b"one"
    assert wait_until(lambda: a.get(b"beta") == b"two", what="beta from a")
    assert wait_until(lambda: b.get(b"\x00bin") == b"\xff\x00", what="binary key from b")
    # str keys are hashed as their UTF-8 bytes, as py2p does
    assert a[b"alpha"] == b"one"
    # the key list reaches every node
    for n in ring3:
        wait_until(lambda: {b"alpha", b"beta", b"\x00bin"} <= set(n.keys()), what="keys on every node")
    assert set(iter(a)) >= {b"alpha", b"beta"}
    # delete through another node
    wait_until(lambda: b"alpha" in set(c.keys()), what="alpha in c's keys")
    del c["alpha"]
    wait_until(lambda: a.get("alpha", b"gone") == b"gone", what="alpha deleted")
    with pytest.raises(KeyError):
        b["alpha"]


def test_missing_key_raises_keyerror_and_get_returns_default(ring3):
    a, b, c = ring3
    with pytest.raises(KeyError):
        a["never-set"]
    assert b.get("never-set") is None
    assert b.get("never-set", b"default") == b"default"
    with pytest.raises(KeyError):
        del c["never-set"]


def test_values_are_str_encoded_like_py2p(ring3):
    a, b, c = ring3
    a["n"] = 12
    a[7] = "seven"
    assert wait_until(lambda: b.get("n") == b"12", what="int value as text")
    assert wait_until(lambda: c.get("7") == b"seven", what="int key as text")


def test_dict_helpers(ring3):
    a, b, c = ring3
    a.update({"k1": "v1", "k2": "v2"})
    wait_until(lambda: {b"k1", b"k2"} <= set(c.keys()), what="keys")
    wait_until(lambda: c.get("k1") == b"v1" and c.get("k2") == b"v2", what="values")
    assert dict(c.items())[b"k1"] == b"v1"
    assert b"v2" in list(c.values())
    assert c.copy()[b"k2"] == b"v2"
    assert c.pop("k1") == b"v1"
    wait_until(lambda: a.get("k1") is None, what="k1 popped")
    assert a.pop("k1", b"dflt") == b"dflt"


def test_lone_node_get_times_out():
    # A leeching node with no peers cannot reach any owner: py2p waits out
    # the timeout and raises socket.timeout; so does rs2p (at the latest).
    with chord_socket("127.0.0.1", 0) as s:
        t = time.monotonic()
        with pytest.raises(socket.timeout):
            s.__getitem__("k", timeout=0.5)
        assert time.monotonic() - t < 3
        assert s.get("k", b"x", timeout=0.5) == b"x"


def test_ring_lookups(ring3):
    a, b, c = ring3
    assert a.next is not None and a.prev is not None
    assert a.find(0) is not None
    assert isinstance(a.dump_data(), dict)


def test_gets_release_the_gil(ring3):
    # Several Python threads doing gets at once must all finish; each get
    # waits with the GIL released, so a thread spinning on Python code keeps
    # running while they wait.
    a, b, c = ring3
    a["g"] = "v"
    wait_until(lambda: b.get("g") == b"v", what="g")
    errors = []

    def worker():
        try:
            for _ in range(50):
                assert b["g"] == b"v"
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors
    assert not any(t.is_alive() for t in ts)


def test_waiting_gets_leave_the_gil_to_other_threads(ring3):
    # A thread doing gets back to back must not starve a Python thread that
    # only runs Python code: the gets wait with the GIL released.
    a, b, c = ring3
    a["gil"] = "v"
    wait_until(lambda: c.get("gil") == b"v", what="gil key")

    def spin(seconds):
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
        return n

    alone = spin(0.5)
    stop = threading.Event()

    def getter():
        while not stop.is_set():
            c["gil"]

    t = threading.Thread(target=getter)
    t.start()
    try:
        shared = spin(0.5)
    finally:
        stop.set()
        t.join(10)
    assert shared > alone * 0.2, (alone, shared)


def test_extras_tls_trust(tmp_path):
    prot = base.protocol("chord", "SSL")
    with chord_socket("127.0.0.1", 0, prot=prot) as b:
        fp = b.tls_fingerprint
        assert isinstance(fp, str) and len(fp) == 64
        with chord_socket("127.0.0.1", 0, prot=prot, tls_trust=[fp]) as a:
            assert a.connect("127.0.0.1", b.out_addr[1])
        trust = tmp_path / "trust"
        trust.write_text("0" * 64 + "\n")
        with chord_socket("127.0.0.1", 0, prot=prot, tls_trust=str(trust)) as c:
            # a refused TLS handshake is no exception, as py2p's connect
            # raises for no handshake failure; the link is not made and the
            # status says why
            assert c.connect("127.0.0.1", b.out_addr[1]) is False
            assert c.routing_table == {}
            assert any("not trusted" in e for e in c.status)
    with pytest.raises(ValueError):
        chord_socket("127.0.0.1", 0, prot=prot, tls_trust=["not hex"])
    with chord_socket("127.0.0.1", 0) as p:
        assert p.tls_fingerprint is None


def test_extras_metrics_addr():
    import urllib.request

    with chord_socket("127.0.0.1", 0, metrics_addr="127.0.0.1:0") as s:
        addr = s.metrics_addr
        assert addr.startswith("127.0.0.1:")
        s["m"] = "v"
        body = urllib.request.urlopen("http://%s/metrics" % addr, timeout=5).read().decode()
        assert "rs2p" in body


def test_extras_data_dir_keeps_id_and_items(tmp_path):
    d = str(tmp_path / "node")
    with chord_socket("127.0.0.1", 0, data_dir=d) as s:
        first_id = s.id
        s.join()
        s["kept"] = "yes"
        wait_until(lambda: s.get("kept") == b"yes", what="kept")
    with chord_socket("127.0.0.1", 0, data_dir=d) as s:
        assert s.id == first_id
        s.join()
        assert wait_until(lambda: s.get("kept") == b"yes", what="kept after a restart")


def test_extras_no_key_list(ring3):
    from conftest import seeding

    nodes = [chord_socket("127.0.0.1", 0, key_list=False) for _ in range(2)]
    try:
        nodes[1].connect("127.0.0.1", nodes[0].out_addr[1])
        for n in nodes:
            n.join()
        wait_until(lambda: all(seeding(n) == 1 for n in nodes), what="a pair")
        nodes[0]["nk"] = "v"
        assert wait_until(lambda: nodes[1].get("nk") == b"v", what="nk")
        wait_until(lambda: b"nk" in set(nodes[1].keys()), what="keys by a ring walk")
    finally:
        for n in nodes:
            n.close()
