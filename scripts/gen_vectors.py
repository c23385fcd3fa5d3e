#!/usr/bin/env python3
"""Regenerate (or check) rs2p's golden vectors, tests/vectors/*.json, from the
real py2p 0.5.607.

Every vector is produced by calling py2p itself; this script only arranges the
inputs (fixed clock, fixed salts, seeded `random`) and writes down what py2p
returned or put on the wire. See tests/vectors/README.md for what each file
holds.

Usage
    python3 scripts/gen_vectors.py --out DIR    write all eight files into DIR
    python3 scripts/gen_vectors.py --check      regenerate into a temporary
                                                directory and compare with
                                                tests/vectors/ (exit 1 on a
                                                mismatch)
Options
    --against DIR      compare with DIR instead of tests/vectors/
    --only A,B         only these files (e.g. --only frames.json,ring.json)
    --skip-live        leave out capture_chord_live.json and
                       capture_chord_pair.json (they need free local ports
                       48500-48519, 48530-48532 and take about 10 s)
    --venv DIR         run inside the venv DIR, creating it first if needed
                       (python3 -m venv DIR; pip install py2p==0.5.607
                       python-snappy==0.7.3), then re-run this script with it
    --lenient-compression
                       with --check: accept compressed bytes that differ from
                       the committed ones as long as they decompress to the
                       same input (for machines whose zlib/bzip2/liblzma build
                       differs from the one that made the files)

Which python
    The script must run under a python that can import py2p 0.5.607 and
    python-snappy (0.7.3, which pulls in cramjam). The test suite builds one at
    target/tmp/py2p-venv-0.5.607 the first time a py2p test runs (for example
    `cargo test --test codec py2p_codec::`), so
        target/tmp/py2p-venv-0.5.607/bin/python scripts/gen_vectors.py --check
    works after that; otherwise use --venv DIR.

What --check compares
    base58.json, ids.json, ring.json, compression.json, frames.json and
    defect_probes.json must be byte-identical (json.dumps(indent=1) plus a
    final newline, ASCII escapes, key order as written here).
    capture_chord_live.json and capture_chord_pair.json record real TCP traffic
    at the real clock, so they are compared by structure: same keys, phases,
    frame count and order, compression, message type, sender and payload of
    every frame (the live server's port and id are normalised in case it had
    to move off 48500); times, message ids, raw bytes, capture_started_unix and
    the proxy's read_order are not compared.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS_DIR = os.path.join(REPO, "tests", "vectors")
TEST_VENV_PYTHON = os.path.join(REPO, "target", "tmp", "py2p-venv-0.5.607", "bin", "python")
PIP_PINS = ["py2p==0.5.607", "python-snappy==0.7.3"]

FIXED_TIME = 1700000000
SALT_A = b"00000000-0000-4000-8000-000000000000"
SALT_B = b"11111111-1111-4111-8111-111111111111"
BASE58_SEED = 58      # random 384/512-bit integers of base58.json
RING_SEED = 384       # peer ids, random query keys and dump_data start of ring.json
FRAMES_SEED = 0       # py2p's own random.shuffle of peer lists in frames.json
RING = 2 ** 384

DETERMINISTIC = ["base58.json", "ids.json", "ring.json", "compression.json",
                 "frames.json", "defect_probes.json"]
LIVE = ["capture_chord_live.json", "capture_chord_pair.json"]
ALL_FILES = DETERMINISTIC + LIVE

LIVE_PORTS = range(48500, 48520)
LIVE_CLIENT_ADDR_JSON = '["127.0.0.1", 48599]'
PAIR_A_PORT, PAIR_PROXY_PORT, PAIR_B_PORT = 48530, 48531, 48532

# Filled in by load_py2p().
base = mesh = chord = None
COMPRESSIONS = []   # [(name, flag)] in the order the files list them


# ---------------------------------------------------------------------------
# Finding py2p
# ---------------------------------------------------------------------------

def load_py2p(without_snappy=False):
    """Imports py2p 0.5.607 or exits with advice on which python to use.
    without_snappy: import it as a venv lacking python-snappy would (py2p then
    neither offers nor accepts snappy)."""
    global base, mesh, chord, COMPRESSIONS
    if without_snappy:
        sys.modules["snappy"] = None     # makes `import snappy` raise ImportError
    try:
        import py2p.base as b
        import py2p.mesh as m
        import py2p.chord as c
        if not without_snappy:
            import snappy  # noqa: F401  (python-snappy: py2p offers it when importable)
    except ImportError as e:
        hint = ("  %s scripts/gen_vectors.py ...\n" % TEST_VENV_PYTHON
                if os.path.exists(TEST_VENV_PYTHON) else
                "  (the test suite builds target/tmp/py2p-venv-0.5.607 on its first py2p test,\n"
                "   e.g. `cargo test --test codec py2p_codec::`; then use its bin/python)\n")
        sys.exit("gen_vectors.py: cannot import py2p/python-snappy with %s (%s).\n"
                 "Run it with the test venv's python:\n%s"
                 "or let the script build a venv:  python3 scripts/gen_vectors.py --venv /tmp/genvenv ...\n"
                 "(pip install %s)" % (sys.executable, e, hint, " ".join(PIP_PINS)))
    if b.version != "0.5.607":
        sys.exit("gen_vectors.py: found py2p %s at %s, need 0.5.607" % (b.version, b.__file__))
    base, mesh, chord = b, m, c
    f = base.flags
    COMPRESSIONS = [("zlib", f.zlib), ("gzip", f.gzip), ("bz2", f.bz2), ("lzma", f.lzma),
                    ("snappy", f.snappy)]


def use_venv(venv, argv):
    """Re-executes this script under the venv's python (building it first)."""
    venv = os.path.abspath(venv)
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(python):
        print("gen_vectors.py: building venv %s" % venv, file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([os.path.join(venv, "bin", "pip"), "install", "-q"] + PIP_PINS)
    os.execv(python, [python, os.path.abspath(__file__)] + argv)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def dumps(obj):
    return json.dumps(obj, indent=1) + "\n"


def b58(i):
    return base.to_base_58(i).decode()


def text_or_none(b):
    try:
        return bytes(b).decode("utf-8")
    except UnicodeDecodeError:
        return None


def sha384_id(data):
    """An id the way py2p makes them: base58 of a SHA-384 digest."""
    return base.to_base_58(int(hashlib.sha384(data).hexdigest(), 16))


def flag_name(flag):
    for name, f in COMPRESSIONS:
        if f == flag:
            return name
    raise KeyError(flag)


def split_frames(stream):
    out, at = [], 0
    while at < len(stream):
        n = base.unpack_value(stream[at:at + 4])
        out.append(bytes(stream[at:at + 4 + n]))
        at += 4 + n
    return out


def decode_frame(frame):
    """(compression flag or None, InternalMessage) for one length-prefixed frame,
    decoded by py2p itself: uncompressed first, then each method py2p knows."""
    try:
        return None, base.InternalMessage.feed_string(frame, False, None)
    except Exception:
        pass
    for _, flag in COMPRESSIONS:
        try:
            msg = base.InternalMessage.feed_string(frame, False, [flag])
        except Exception:
            continue
        if not msg.compression_fail:
            return flag, msg
    raise ValueError("py2p cannot decode frame %s" % frame.hex())


# ---------------------------------------------------------------------------
# A fixed world: clock, salt and daemon threads under our control
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def fixed_world():
    """py2p reads the clock through getUTC() (imported by name into each module)
    and the process salt from base.user_salt; pin both, restore afterwards."""
    import py2p.utils as utils
    saved = [(mod, "getUTC", mod.getUTC) for mod in (utils, base, mesh, chord)]
    saved.append((base, "user_salt", base.user_salt))
    for mod, name, _ in saved[:-1]:
        setattr(mod, name, lambda: FIXED_TIME)
    try:
        with contextlib.redirect_stdout(io.StringIO()):   # py2p prints now and then
            yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


class Wire(object):
    """Stands in for a connection's TCP socket: py2p's send() lands in `sent`,
    recv() hands out `inbox` one read at a time."""

    def __init__(self):
        self.sent, self.inbox, self.closed = [], [], False

    def send(self, data):
        self.sent.append(bytes(data))
        return len(data)

    def recv(self, _n):
        return self.inbox.pop(0) if self.inbox else b""

    def shutdown(self, _how):
        self.closed = True

    def close(self):
        self.closed = True

    def settimeout(self, _t):
        pass

    def fileno(self):
        return -1


_nodes = []


def new_node(kind, port, salt=SALT_A):
    """A real mesh_socket/chord_socket whose id is that of one bound to
    127.0.0.1:port with the given salt. It listens on an ephemeral port (the id
    only depends on out_addr) and its daemon thread is stopped at once, so every
    byte it handles is fed by hand."""
    base.user_salt = salt
    cls = mesh.mesh_socket if kind == "mesh" else chord.chord_socket
    node = cls("127.0.0.1", 0, out_addr=("127.0.0.1", port))
    node.daemon.alive = False
    node.daemon.daemon.join()
    node.daemon.sock.close()
    _nodes.append(node)
    return node


def dispose_nodes():
    while _nodes:
        node = _nodes.pop()
        node.routing_table.clear()
        del node.awaiting_ids[:]
        try:
            node.close()
        except Exception:
            pass


def add_conn(node, peer_id=None, addr=None, compression=None, leeching=None):
    """A connection on `node` over a Wire; in the routing table under peer_id,
    or still awaiting its handshake when peer_id is None."""
    cls = chord.chord_connection if isinstance(node, chord.chord_socket) else mesh.mesh_connection
    conn = cls(Wire(), node)
    conn.addr = addr
    conn.compression = list(compression or [])
    if leeching is not None:
        conn.leeching = leeching
    if peer_id is None:
        node.awaiting_ids.append(conn)
    else:
        conn.id = peer_id
        node.routing_table[peer_id] = conn
    return conn


def feed(conn, data):
    """What py2p's daemon does with bytes read from a connection (minus the
    exception handling of process_data)."""
    conn.collect_incoming_data(data)
    while conn.find_terminator():
        conn.found_terminator()


def taken(conn):
    out, conn.sock.sent = conn.sock.sent, []
    return out


def message(msg_type, sender, payload, compression=None):
    return base.InternalMessage(msg_type, sender, payload, compression, timestamp=FIXED_TIME).string


# ---------------------------------------------------------------------------
# base58.json
# ---------------------------------------------------------------------------

def gen_base58():
    rng = random.Random(BASE58_SEED)
    ints = [0, 1, 57, 58, 59, 3363, 3364, 255, 256, 2 ** 32 - 1, 2 ** 32, 2 ** 64 - 1, 2 ** 64,
            FIXED_TIME, 2 ** 160 - 1, 2 ** 256 - 1, RING - 1, RING, 2 ** 512 - 1, 10 ** 100]
    ints += [rng.getrandbits(384) for _ in range(4)] + [rng.getrandbits(512) for _ in range(2)]
    encode = []
    for i in ints:
        s = b58(i)
        assert base.from_base_58(s) == i
        encode.append({"int": str(i), "b58": s})
    decode_only = []
    for s in ["", "1", "11", "111", "1112", "12", "2", "z", "21", "1z", "zzzzzzzzzz"]:
        i = base.from_base_58(s)
        decode_only.append({"b58": s, "int": str(i), "reencoded": b58(i)})
    invalid = []
    for s in ["0", "O", "I", "l", "+", " ", "1O1", "abc-", "\u00e9"]:
        try:
            base.from_base_58(s)
            err = None
        except Exception as e:
            err = type(e).__name__
        invalid.append({"b58": s, "error": err})
    from_hash = []
    for data in [b"", b"abc", b"hello world"]:
        for h in ["sha256", "sha384"]:
            digest = hashlib.new(h, data).hexdigest()
            i = int(digest, 16)
            from_hash.append({"data_hex": data.hex(), "hash": h, "digest_hex": digest,
                              "int": str(i), "b58": b58(i)})
    pack = [{"int": i, "hex": base.pack_value(4, i).hex()}
            for i in [0, 1, 255, 256, 65535, 16777216, 4294967295]]
    return {"alphabet": base.base_58, "encode": encode, "decode_only": decode_only,
            "invalid": invalid, "from_hash": from_hash, "pack_value_4": pack}


# ---------------------------------------------------------------------------
# ids.json
# ---------------------------------------------------------------------------

def gen_ids():
    protocols = []
    for subnet, enc in [("mesh", "Plaintext"), ("chord", "Plaintext"), ("", "Plaintext"),
                        ("mesh", "SSL"), ("chord", "SSL"), ("test", "Plaintext"),
                        ("my-app/1", "Plaintext"), ("sub\u00e9", "Plaintext")]:
        prot = base.protocol(subnet, enc)
        hash_input = ("".join(str(x) for x in prot) + base.protocol_version).encode()
        protocols.append({"subnet": subnet, "encryption": enc,
                          "hash_input_hex": hash_input.hex(), "hash_input_text": hash_input.decode(),
                          "sha256_hex": hashlib.sha256(hash_input).hexdigest(),
                          "id": prot.id.decode()})
    defaults = {"base.default_protocol": list(base.default_protocol),
                "mesh.default_protocol": list(mesh.default_protocol),
                "chord.default_protocol": list(chord.default_protocol),
                "protocol_version": base.protocol_version}
    node_ids = []
    for host, port, as_list, prot, salt in [
            ("127.0.0.1", 48101, False, chord.default_protocol, SALT_A),
            ("127.0.0.1", 48101, False, mesh.default_protocol, SALT_A),
            ("127.0.0.1", 44565, False, chord.default_protocol, SALT_B),
            ("192.168.1.10", 4444, False, mesh.default_protocol, SALT_B),
            ("10.0.0.1", 5000, True, chord.default_protocol, SALT_A)]:
        base.user_salt = salt
        # base_socket.__init__ computes the id and binds nothing.
        if as_list:
            sock = base.base_socket(host, port, prot, out_addr=[host, port])
        else:
            sock = base.base_socket(host, port, prot)
        sock._base_socket__closed = True
        out_addr = sock.out_addr
        hash_input = str(out_addr).encode() + prot.id + salt
        assert sha384_id(hash_input) == sock.id
        node_ids.append({"out_addr": list(out_addr), "out_addr_python_type": type(out_addr).__name__,
                         "out_addr_str": str(out_addr), "protocol": list(prot),
                         "protocol_id": prot.id.decode(), "salt": salt.decode(),
                         "hash_input_hex": hash_input.hex(), "id": sock.id.decode(),
                         "id_int": str(base.from_base_58(sock.id))})
    return {"protocols": protocols, "defaults": defaults, "node_ids": node_ids}


# ---------------------------------------------------------------------------
# ring.json
# ---------------------------------------------------------------------------

def gen_ring():
    methods = [m.decode() for m in chord.hashes]
    shifts = {m: max(0, 384 - hashlib.new(m).digest_size * 8) for m in methods}
    keys = [b"", b"a", b"hello", b"test key", "h\u00e9llo w\u00f6rld \u2603".encode(),
            bytes(range(256)), b"\x00", b"12345"]
    get_hashes = []
    for key in keys:
        hs = chord.get_hashes(key)
        entries = []
        for m, h in zip(methods, hs):
            assert h >> shifts[m] == int(hashlib.new(m, key).hexdigest(), 16)
            entries.append({"method": m, "int": str(h), "b58": b58(h), "bits": h.bit_length(),
                            "exceeds_ring": h >= RING})
        get_hashes.append({"key_hex": key.hex(), "key_text": text_or_none(key), "hashes": entries})

    distance = []
    for a, b, limit in [(0, 0, None), (0, 1, None), (1, 0, None), (5, 3, None), (RING - 1, 0, None),
                        (0, RING - 1, None), (RING - 10, 10, None), (10, RING - 10, None),
                        (3, 5, 7), (5, 3, 7), (0, RING, None), (0, 2 ** 512 - 1, None),
                        (2 ** 511, 5, None), (113019, 188325, None), (123, 456, 100)]:
        distance.append({"a": str(a), "b": str(b), "limit": None if limit is None else str(limit),
                         "distance": str(chord.distance(a, b, limit))})

    rng = random.Random(RING_SEED)
    ownership = []
    for port, seeding in [(48110, True), (48111, True), (48112, False)]:
        node = new_node("chord", port)
        if seeding:
            node.join()   # alone: sends nothing, just stops leeching
        peers = []
        for i in range(4):
            pid = base.to_base_58(rng.getrandbits(384))
            conn = add_conn(node, pid, leeching=(i == 3))
            peers.append(conn)
        queries = [node.id_10, node.id_10 + 1, node.id_10 - 1, 0, RING - 1]
        queries += [p.id_10 for p in peers]
        queries += [rng.getrandbits(384) for _ in range(6)]
        queries += list(chord.get_hashes(b"hello"))

        def who(x):
            return "self" if x is node else (None if x is None else x.id.decode())

        ownership.append({
            "self_id": node.id.decode(), "self_id_int": str(node.id_10),
            "self_leeching": node.leeching,
            "peers": [{"id": p.id.decode(), "id_int": str(p.id_10), "leeching": p.leeching}
                      for p in peers],
            "queries": [{"key": str(k), "find": who(node.find(k)), "find_prev": who(node.find_prev(k))}
                        for k in queries],
            "next": who(node.next), "prev": who(node.prev)})

    node = new_node("chord", 48120)
    for key in [b"a", b"b", b"c", b"hello", b"zz"]:
        for m, h in zip(chord.hashes, chord.get_hashes(key)):
            node.data[m][h] = key
    start = rng.getrandbits(384)
    selected = node.dump_data(start, node.id_10)

    def listing(tables):
        return [{"method": m.decode(), "key": str(k)} for m in chord.hashes for k in sorted(tables[m])]

    dump_data = {"start": str(start), "end": str(node.id_10), "stored": listing(node.data),
                 "selected": listing(selected)}
    return {"ring_modulus": str(RING), "hash_order": methods, "shifts": shifts,
            "get_hashes": get_hashes, "distance": distance, "ownership": ownership,
            "dump_data": dump_data}


# ---------------------------------------------------------------------------
# compression.json
# ---------------------------------------------------------------------------

def default_venv_compression():
    """py2p's compression list and handshake text when python-snappy is absent,
    computed by py2p in a child python that cannot import snappy."""
    code = ("import sys, json; sys.modules['snappy'] = None; import py2p.base as b; "
            "print(json.dumps([[m.hex() for m in b.compression], b.json_compressions]))")
    out = subprocess.check_output([sys.executable, "-c", code])
    order, text = json.loads(out.decode())
    return [bytes.fromhex(h) for h in order], text


def gen_compression(default_order, default_json):
    samples = []
    for data in [b"", b"a", b"hello hello hello hello hello", bytes(range(256)) * 2]:
        methods = []
        for name, flag in COMPRESSIONS:
            packed = base.compress(data, flag)
            assert base.decompress(packed, flag) == data
            methods.append({"name": name, "flag": flag.hex(), "compressed": packed.hex()})
        samples.append({"input": data.hex(), "methods": methods})
    return {"flags": {name: flag.hex() for name, flag in COMPRESSIONS},
            "preference_order_default_venv": [f.hex() for f in default_order],
            "json_compressions_default_venv": default_json,
            "json_compressions_with_snappy": base.json_compressions,
            "samples": samples}


# ---------------------------------------------------------------------------
# frames.json
# ---------------------------------------------------------------------------

FRAME_TEXT = {
    "mesh_handshake": (
        "connection handshake of a mesh_socket bound to 127.0.0.1:48130 (sent by both sides on connect/accept)",
        "mesh_socket._send_handshake"),
    "chord_handshake": (
        "connection handshake of a chord_socket bound to 127.0.0.1:48131",
        "chord_socket._send_handshake"),
    "chord_handshake_with_snappy": (
        "the same handshake as py2p builds it when python-snappy is importable (advertised list then "
        "starts with the snappy flag 0x20, which JSON-encodes as a plain space)",
        "base.json_compressions with snappy"),
    "chord_meta_leeching": (
        'chord metadata: handshake sub-flag with ONE packet "1" (leeching), followed by one notify per known key',
        "chord_socket._send_meta (leeching=True, keys={alpha})"),
    "chord_meta_seeding": (
        'chord metadata "0" (seeding) + notify per key',
        "chord_socket._send_meta (leeching=False, keys={alpha})"),
    "peers": (
        "peer list sent in answer to a handshake (order is randomly shuffled by py2p)",
        "mesh_socket._send_handshake_response"),
    "peers_empty": (
        "peer list with no peers",
        "mesh_socket._send_handshake_response (empty routing table)"),
    "request_peers": (
        "ask a peer for its peer list",
        "mesh_socket.request_peers"),
    "broadcast": (
        'user broadcast: mesh_socket.send("hello", "world")',
        "mesh_socket.send"),
    "broadcast_binary": (
        "user broadcast with a unicode str (utf-8) and raw bytes",
        "mesh_socket.send"),
    "whisper": (
        "direct message: connection.send(whisper, whisper, ...)",
        "base_connection.send"),
    "request_route": (
        "route request broadcast by message.reply() when the original sender is not directly connected: "
        "[request, request_id, wanted_id]",
        "base.message.reply"),
    "response": (
        "answer to a route request by a node connected to the wanted id: [response, request_id, json [addr, id]]",
        "mesh_socket.__handle_request"),
    "renegotiate_on_decode_failure": (
        "what py2p sends when a frame fails to parse with IndexError (here: a frame holding only one packet): "
        'renegotiate/compression "[]" then renegotiate/resend',
        "mesh_connection.found_terminator"),
    "renegotiate_compression_reply": (
        'answer to an incoming renegotiate/compression ["\\u0012","\\u0013"] when it changes the connection '
        "state: our intersection in OUR preference order; it is itself compressed with the newly accepted "
        "method (here zlib)",
        "base_connection.handle_renegotiate"),
    "resend_reply_defect": (
        'DEFECT: answer to renegotiate/resend after the last whisper was [peers, "[]"]: py2p re-sends the '
        "payload with the sub-flag (0x07) as message type and the rest as payload",
        "base_connection.handle_renegotiate (resend)"),
    "chord_set_store_notify": (
        'chord_socket.set("alpha", "beta") on a node whose only seeding peer owns every hash: 5 store '
        "whispers (sha1, sha224, sha256, sha384, sha512) then one notify broadcast",
        "chord_socket.__setitem__"),
    "chord_delete_store_notify": (
        'chord_socket.set("alpha", "") (= del): 5 stores with an empty value then notify with "del"',
        "chord_socket.__setitem__ (delete)"),
    "chord_get_retrieve": (
        'chord_socket.get("alpha"): 5 retrieve whispers [retrieve, method, key_b58]',
        "chord_socket.get"),
    "chord_retrieved": (
        'answer to [retrieve, sha384, key] by the owner holding b"beta": [retrieved, method, key_b58, value]',
        "chord_socket.__handle_retrieve"),
    "chord_retrieved_missing": (
        "answer by the owner when the key is absent: value packet is empty",
        "chord_socket.__handle_retrieve"),
    "chord_join": (
        'chord_socket.join() with one connection: handshake, peers, meta "0" to each connection',
        "chord_socket.join"),
    "chord_unjoin": (
        'chord_socket.unjoin(): handshake, peers, meta "1"',
        "chord_socket.unjoin"),
    "waterfall_relay": (
        "a broadcast from NodeA received by a node with peers NodeA and NodeB is relayed unchanged to NodeB only",
        "mesh_connection.handle_waterfall / mesh_socket.waterfall"),
}

MESH_PORT, CHORD_PORT = 48130, 48131


def frame_records(name, frames, extra=None):
    """One record per frame py2p wrote for `name` (name#i when several)."""
    desc, code_path = FRAME_TEXT[name]
    out = []
    for i, frame in enumerate(frames):
        flag, msg = decode_frame(frame)
        plain = base.InternalMessage(msg.msg_type, msg.sender, msg.payload, timestamp=msg.time).string
        if flag is None:
            assert plain == frame, name
        body = plain[4:]
        encodings = [{"compression": None, "flag": None, "frame": plain.hex(), "bytes_exact": True}]
        for cname, cflag in COMPRESSIONS:
            packed = base.compress(body, cflag)
            encodings.append({"compression": cname, "flag": cflag.hex(),
                              "frame": (base.pack_value(4, len(packed)) + packed).hex(),
                              "bytes_exact": False})
        rec = {"name": name if len(frames) == 1 else "%s#%d" % (name, i),
               "description": desc, "code_path": code_path,
               "msg_type": msg.msg_type.hex(), "sender": msg.sender.decode(),
               "time": msg.time, "time_58": msg.time_58.decode(), "id": msg.id.decode(),
               "payload": [bytes(p).hex() for p in msg.payload],
               "payload_text": [text_or_none(p) for p in msg.payload],
               "encodings": encodings}
        rec.update(extra or {})
        if flag is not None:
            rec["as_sent"] = {"compression": flag_name(flag), "frame": frame.hex()}
        out.append(rec)
    return out


def gen_frames(snappy_json):
    f = base.flags
    random.seed(FRAMES_SEED)
    far_id = sha384_id(b"far")      # a node nobody here is connected to
    peer_id = sha384_id(b"peer")    # the one connection of the chord join/unjoin vectors
    records = []

    def mesh_node():
        return new_node("mesh", MESH_PORT)

    def chord_node():
        return new_node("chord", CHORD_PORT)

    # Handshakes.
    node = mesh_node()
    c = add_conn(node)
    node._send_handshake(c)
    records += frame_records("mesh_handshake", taken(c))

    node = chord_node()
    c = add_conn(node)
    node._send_handshake(c)
    records += frame_records("chord_handshake", taken(c))
    saved = mesh.json_compressions
    mesh.json_compressions = snappy_json
    try:
        node._send_handshake(c)
    finally:
        mesh.json_compressions = saved
    records += frame_records("chord_handshake_with_snappy", taken(c))

    # Chord metadata.
    node = chord_node()
    node._chord_socket__keys.add(b"alpha")
    c = add_conn(node)
    node._send_meta(c)
    records += frame_records("chord_meta_leeching", taken(c))
    node.leeching = False
    node._send_meta(c)
    records += frame_records("chord_meta_seeding", taken(c))

    # Peer lists.
    node = mesh_node()
    add_conn(node, b"PeerOne", addr=("127.0.0.1", 48001))
    add_conn(node, b"PeerTwo", addr=("10.0.0.2", 48002))
    c = add_conn(node)
    node._send_handshake_response(c)
    records += frame_records("peers", taken(c))

    node = mesh_node()
    c = add_conn(node)
    node._send_handshake_response(c)
    records += frame_records("peers_empty", taken(c))

    node = mesh_node()
    c = add_conn(node, b"NodeA")
    node.request_peers()
    records += frame_records("request_peers", taken(c))

    node.send("hello", "world")
    records += frame_records("broadcast", taken(c))
    node.send("caf\u00e9", b"\x00\xff")
    records += frame_records("broadcast_binary", taken(c))
    c.send(f.whisper, f.whisper, "hi there")
    records += frame_records("whisper", taken(c))

    # Route request (reply to a sender we are not connected to) and its answer.
    node = mesh_node()
    c = add_conn(node, b"NodeA")
    incoming = base.InternalMessage(f.whisper, far_id, [f.whisper, b"question"], timestamp=FIXED_TIME)
    base.message(incoming, node).reply(b"answer")
    (request_id,) = list(node.requests)
    pending = [bytes(p).hex() for p in node.requests[request_id]]
    frames = taken(c)
    records += frame_records("request_route", frames, {"pending_request": pending})

    node = mesh_node()
    add_conn(node, far_id, addr=["127.0.0.1", 48077])
    c = add_conn(node, b"NodeA")
    feed(c, message(f.broadcast, b"NodeA", [f.request, request_id, far_id]))
    records += frame_records("response", taken(c))

    # A frame that does not parse: py2p renegotiates (works only when exactly one
    # compression method is shared, see the probe below).
    trigger = base.pack_value(4, 5) + base.pack_value(4, 1) + f.whisper
    probe = {}
    for label, methods in [("none", []), ("zlib", [f.zlib]), ("zlib+gzip", [f.zlib, f.gzip])]:
        node = mesh_node()
        c = add_conn(node, compression=methods)
        try:
            feed(c, trigger)
            probe[label] = "sent %d frames" % len(taken(c))
        except Exception as e:
            probe[label] = "raised %s" % type(e).__name__
    node = mesh_node()
    c = add_conn(node, compression=[f.zlib])
    feed(c, trigger)
    records += frame_records("renegotiate_on_decode_failure", taken(c), {
        "trigger_frame": trigger.hex(), "connection_compression": [f.zlib.hex()],
        "defect_probe_by_peer_compression_list": probe,
        "note": "only works when exactly one method is shared; frames were sent zlib-compressed (as_sent)"})

    node = mesh_node()
    c = add_conn(node)
    trigger_payload = [f.compression, json.dumps([f.lzma.decode(), f.zlib.decode()]).encode()]
    feed(c, message(f.renegotiate, b"NodeA", trigger_payload))
    records += frame_records("renegotiate_compression_reply", taken(c), {
        "trigger_payload": [p.hex() for p in trigger_payload],
        "note": "frame captured as sent (zlib-compressed); encodings[0] is the uncompressed re-encoding"})

    node = mesh_node()
    c = add_conn(node)
    node._send_handshake_response(c)     # last whisper: [peers, "[]"]
    taken(c)
    feed(c, message(f.renegotiate, b"NodeA", [f.resend]))
    records += frame_records("resend_reply_defect", taken(c))

    # Chord DHT traffic of a leeching node whose only seeding peer owns everything.
    node = chord_node()
    c = add_conn(node, peer_id, addr=["127.0.0.1", 48199], leeching=False)
    node.set("alpha", "beta")
    records += frame_records("chord_set_store_notify", taken(c))
    node.set("alpha", "")
    records += frame_records("chord_delete_store_notify", taken(c))
    node.get("alpha", timeout=0)         # sends the 5 retrieves, gives up at once
    records += frame_records("chord_get_retrieve", taken(c))

    # The owner answering retrieves (seeding, its peer leeching).
    alpha = chord.get_hashes(b"alpha")
    node = chord_node()
    node.join()
    node.set(b"alpha", b"beta")          # alone: stored locally
    c = add_conn(node, peer_id, leeching=True)
    feed(c, message(f.whisper, peer_id, [f.retrieve, b"sha384", base.to_base_58(alpha[3])]))
    records += frame_records("chord_retrieved", taken(c))
    node = chord_node()
    node.join()
    c = add_conn(node, peer_id, leeching=True)
    nope = chord.get_hashes(b"nope")
    feed(c, message(f.whisper, peer_id, [f.retrieve, b"sha1", base.to_base_58(nope[0])]))
    records += frame_records("chord_retrieved_missing", taken(c))

    # join()/unjoin() with one connection and one known key.
    node = chord_node()
    node._chord_socket__keys.add(b"alpha")
    c = add_conn(node, peer_id, addr=("127.0.0.1", 48199))
    node.join()
    records += frame_records("chord_join", taken(c))
    node.unjoin()
    records += frame_records("chord_unjoin", taken(c))

    # Waterfall relay.
    node = mesh_node()
    a = add_conn(node, b"NodeA")
    b = add_conn(node, b"NodeB")
    received = message(f.broadcast, b"NodeA", [f.broadcast, b"flood"])
    feed(a, received)
    assert not a.sock.sent
    records += frame_records("waterfall_relay", taken(b), {"received_frame": received.hex()})

    for node in _nodes:
        assert not node.daemon.exceptions
    return {"fixed_time": FIXED_TIME, "snappy_included": True, "frames": records}


# ---------------------------------------------------------------------------
# defect_probes.json
# ---------------------------------------------------------------------------

def run_reads(node, reads):
    """Feeds `reads` one recv() at a time through py2p's own daemon loop
    (base_daemon.process_data); stops once py2p closed the connection."""
    conn = add_conn(node)
    for r in reads:
        if conn.sock.closed:
            break
        conn.sock.inbox.append(r)
        node.daemon.process_data(conn)
    return conn


def last_exception(node):
    if not node.daemon.exceptions:
        return None
    return node.daemon.exceptions[-1].strip().splitlines()[-1].split(":")[0].split(".")[-1]


def gen_defect_probes():
    f = base.flags
    probes = []
    m1 = message(f.whisper, b"X", [f.whisper, b"a"])
    m2 = message(f.whisper, b"X", [f.whisper, b"b"])
    for name, cut in [("D2_read_leaves_exactly_4_bytes", 4), ("D2_control_read_leaves_5_bytes", 5)]:
        reads = [m1 + m2[:cut], m2[cut:]]
        node = new_node("mesh", MESH_PORT)
        conn = run_reads(node, reads)
        probes.append({"probe": name, "reads": [r.hex() for r in reads],
                       "connection_closed": conn.sock.closed, "messages_delivered": len(node.queue),
                       "exception": last_exception(node)})
    reads = [message(f.whisper, b"X", [])]
    node = new_node("mesh", MESH_PORT)
    conn = run_reads(node, reads)
    probes.append({"probe": "four_packets_no_payload", "reads": [r.hex() for r in reads],
                   "connection_closed": conn.sock.closed, "messages_delivered": len(node.queue),
                   "exception": last_exception(node)})

    # A seeding node whose only peer leeches: it owns every key.
    node = new_node("chord", CHORD_PORT)
    node.join()
    add_conn(node, b"NodeA", leeching=True)
    probes.append({"probe": "D13_get_missing_key_owned_locally", "result_repr": repr(node.get(b"nope"))})

    for name, payload in [("D9_store_delete_missing_key", [f.store, b"sha384", b"2", b""]),
                          ("D9_store_unknown_method", [f.store, b"md5", b"2", b"v"])]:
        node = new_node("chord", CHORD_PORT)
        node.join()
        run_reads(node, [message(f.whisper, b"X", payload)])
        probes.append({"probe": name, "payload": [p.hex() for p in payload],
                       "exception": last_exception(node)})

    node = new_node("chord", CHORD_PORT)
    run_reads(node, [message(f.broadcast, b"X", [f.notify, b"alpha", b"del"])])
    probes.append({"probe": "D1_notify_delete", "exception": last_exception(node)})

    node = new_node("chord", CHORD_PORT)
    try:
        node[b"alpha"]
        err = None
    except Exception as e:
        err = type(e).__name__
    probes.append({"probe": "D7_lookup_with_no_connections", "exception": err})
    return {"description": "outcomes of real py2p 0.5.607 code paths that PROTOCOL.md lists as defects",
            "probes": probes}


def gen_deterministic(names):
    """{file name: text} for the requested deterministic files."""
    default_order, default_json = default_venv_compression()
    assert default_order == [fl for fl in base.compression if fl != base.flags.snappy]
    out = {}
    with fixed_world():
        try:
            makers = {"base58.json": gen_base58, "ids.json": gen_ids, "ring.json": gen_ring,
                      "compression.json": lambda: gen_compression(default_order, default_json),
                      "defect_probes.json": gen_defect_probes}
            for name in names:
                if name == "frames.json":
                    # Frames are built by a py2p that, like a venv without
                    # python-snappy, offers zlib, gzip, bz2, lzma (in place:
                    # mesh and chord share base.compression).
                    snappy_json = base.json_compressions
                    saved = list(base.compression), base.json_compressions, mesh.json_compressions
                    base.compression[:] = default_order
                    base.json_compressions = mesh.json_compressions = default_json
                    try:
                        obj = gen_frames(snappy_json)
                    finally:
                        base.compression[:] = saved[0]
                        base.json_compressions, mesh.json_compressions = saved[1], saved[2]
                elif name in makers:
                    obj = makers[name]()
                else:
                    continue
                out[name] = dumps(obj)
                dispose_nodes()
        finally:
            dispose_nodes()
    return out


# ---------------------------------------------------------------------------
# Live captures (real sockets, real clock) — child processes
# ---------------------------------------------------------------------------

def patch_listener_reuseaddr():
    """The only change to py2p in the live captures besides the salt: its
    listening socket gets SO_REUSEADDR so the same port can be bound again
    right after the previous run."""
    orig = base.get_socket

    def get_socket(protocol, serverside=False):
        sock = orig(protocol, serverside)
        if serverside:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return sock
    base.get_socket = get_socket


def port_is_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def child_live_server():
    """Child: a chord_socket that joined and stored alpha=beta while alone."""
    base.user_salt = SALT_A
    patch_listener_reuseaddr()
    for port in LIVE_PORTS:
        if port_is_free(port):
            break
    else:
        sys.exit("no free port in %d-%d" % (LIVE_PORTS[0], LIVE_PORTS[-1]))
    node = chord.chord_socket("127.0.0.1", port)
    node.join()
    node.set(b"alpha", b"beta")
    print(json.dumps({"port": port, "id": node.id.decode()}), flush=True)
    sys.stdin.read()
    os._exit(0)


def child_pair_node(which):
    """Child: node A (listens, holds alpha=beta) or node B (connects to the proxy,
    then get/set). B's stdout is part of the capture; its id goes to stderr."""
    patch_listener_reuseaddr()
    if which == "A":
        base.user_salt = SALT_A
        node = chord.chord_socket("127.0.0.1", PAIR_A_PORT)
        node.join()
        node.set(b"alpha", b"beta")
        print(json.dumps({"id": node.id.decode()}), flush=True)
        sys.stdin.read()
    else:
        base.user_salt = SALT_B
        node = chord.chord_socket("127.0.0.1", PAIR_B_PORT)
        print("ID " + node.id.decode(), file=sys.stderr, flush=True)
        node.join()
        node.connect("127.0.0.1", PAIR_PROXY_PORT)
        time.sleep(2)
        print("GET " + repr(node.get(b"alpha")), flush=True)
        node.set(b"gamma", b"delta")
        print("DONE", flush=True)
        time.sleep(1.5)
    os._exit(0)


def spawn_child(args):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__)] + args,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def end_child(proc):
    try:
        proc.stdin.close()
    except Exception:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def captured_frame(frame, flag_style):
    flag, msg = decode_frame(frame)
    if flag is None:
        cw = None
    else:
        cw = flag.hex() if flag_style == "hex" else flag_name(flag)
    return {"frame": frame.hex(), "compressed_with": cw, "msg_type": msg.msg_type.hex(),
            "sender": msg.sender.decode(), "time": msg.time, "id": msg.id.decode(),
            "payload": [bytes(p).hex() for p in msg.payload],
            "payload_text": [text_or_none(p) for p in msg.payload]}


def read_quiet(sock, quiet=1.0, limit=6.0):
    """Everything the peer sends until it has been quiet for `quiet` seconds;
    also reports whether it closed the connection."""
    data, end = b"", time.time() + limit
    while time.time() < end:
        ready, _, _ = select.select([sock], [], [], quiet)
        if not ready:
            return data, False
        chunk = sock.recv(65536)
        if not chunk:
            return data, True
        data += chunk
    return data, False


def gen_capture_live():
    f = base.flags
    server = spawn_child(["--_child", "live-server"])
    try:
        line = server.stdout.readline()
        if not line:
            raise RuntimeError("live server did not start: %s" % server.stderr.read().decode())
        info = json.loads(line.decode())
        port, server_id = info["port"], info["id"]
        client_id = sha384_id(b"raw-client")
        advertised = json.dumps([f.zlib.decode()])
        started = int(time.time())
        sock = socket.create_connection(("127.0.0.1", port))
        alpha = chord.get_hashes(b"alpha")

        def build(msg_type, payload, compressed=True):
            return base.InternalMessage(msg_type, client_id, payload, [f.zlib] if compressed else None,
                                        timestamp=int(time.time())).string

        steps = [("accept", None),
                 ("client_handshake_zlib", lambda: build(f.whisper, [
                     f.handshake, client_id, chord.default_protocol.id,
                     LIVE_CLIENT_ADDR_JSON.encode(), advertised.encode()], compressed=False)),
                 ("client_meta_seeding", lambda: build(f.whisper, [f.handshake, b"0"])),
                 ("client_retrieve_sha384_alpha", lambda: build(f.whisper, [
                     f.retrieve, b"sha384", base.to_base_58(alpha[3])])),
                 ("client_notify_delete_defect", lambda: build(f.broadcast, [f.notify, b"alpha", b"del"]))]
        phases = []
        for name, make in steps:
            sent = None
            if make is not None:
                sent = make()
                sock.sendall(sent)
            raw, closed = read_quiet(sock, quiet=1.5 if name == "client_meta_seeding" else 1.0)
            phases.append({"phase": name, "client_sent": None if sent is None else sent.hex(),
                           "raw_received": raw.hex(), "connection_closed_by_server": closed,
                           "frames": [captured_frame(fr, "hex") for fr in split_frames(raw)]})
            if closed:
                break
        sock.close()
    finally:
        end_child(server)

    retrieve_frames = [fr for p in phases if p["phase"] == "client_retrieve_sha384_alpha"
                       for fr in p["frames"]]
    if retrieve_frames and retrieve_frames[0]["payload"][0] == f.retrieve.hex():
        retrieve_note = ("phase client_retrieve_sha384_alpha: with these ids the server now routes the key to "
                         "the client (closest seeding node) and forwards the retrieve back to the requester "
                         "instead of answering (which of the two happens depends on the ids)")
    else:
        retrieve_note = ("phase client_retrieve_sha384_alpha: with these ids the server still owns the key and "
                         "answers with retrieved (which of the two happens depends on the ids)")
    notes = [
        'phase accept: server sends handshake, meta "0" and one notify per known key, all uncompressed, '
        "before the client says anything",
        "phase client_handshake_zlib: server answers with a peer list (which includes the client itself), "
        "zlib-compressed because the client advertised only zlib",
        "phase client_meta_seeding: client claims seeding; server re-sends its meta + notifies, a peer list, "
        "and hands off (store) every item the client is closer to (how many depends on the ids)",
        "listener has SO_REUSEADDR set (the only patch besides the salt) so the port, and therefore the server "
        "id, is normally the same each run (%d; the next free port up to %d otherwise)"
        % (LIVE_PORTS[0], LIVE_PORTS[-1]),
        retrieve_note,
        "phase client_notify_delete_defect: the server hits an undefined name in its notify handler and "
        "closes the connection"]
    return {
        "description": "Live py2p 0.5.607 chord_socket on 127.0.0.1:%d (join() called, then set(b\"alpha\", "
                       "b\"beta\") while alone). A raw TCP client connected and recorded every byte. Real clock: "
                       "timestamps and ids vary per run; the server id is fixed by the patched salt." % port,
        "server": {"addr": ["127.0.0.1", port], "id": server_id, "salt": SALT_A.decode(),
                   "protocol_id": chord.default_protocol.id.decode()},
        "client": {"id": client_id.decode(), "advertised_compressions": advertised},
        "capture_started_unix": started,
        "notes": notes,
        "phases": phases}


def gen_capture_pair():
    for port in (PAIR_A_PORT, PAIR_PROXY_PORT, PAIR_B_PORT):
        if not port_is_free(port):
            raise RuntimeError("port %d is busy" % port)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PAIR_PROXY_PORT))
    listener.listen(1)
    node_a = spawn_child(["--_child", "pair-A"])
    node_b = None
    try:
        line = node_a.stdout.readline()
        if not line:
            raise RuntimeError("node A did not start: %s" % node_a.stderr.read().decode())
        a_id = json.loads(line.decode())["id"]
        node_b = spawn_child(["--_child", "pair-B"])
        listener.settimeout(10)
        from_b, _ = listener.accept()
        to_a = socket.create_connection(("127.0.0.1", PAIR_A_PORT))
        streams = {"A->B": b"", "B->A": b""}
        read_order = []
        peers = {from_b: ("B->A", to_a), to_a: ("A->B", from_b)}
        deadline = time.time() + 20
        open_ = True
        while open_ and time.time() < deadline:
            ready, _, _ = select.select(list(peers), [], [], 0.5)
            for s in ready:
                direction, other = peers[s]
                chunk = s.recv(65536)
                if not chunk:
                    open_ = False
                    break
                read_order.append({"direction": direction, "offset": len(streams[direction]),
                                   "length": len(chunk)})
                streams[direction] += chunk
                other.sendall(chunk)
            if node_b.poll() is not None and not ready:
                open_ = False
        from_b.close()
        to_a.close()
        node_b.wait(timeout=10)
        b_out = node_b.stdout.read().decode().splitlines()
        b_id = [l[3:] for l in node_b.stderr.read().decode().splitlines() if l.startswith("ID ")][0]
    finally:
        listener.close()
        end_child(node_a)
        if node_b is not None:
            end_child(node_b)
    return {
        "description": "Two real py2p 0.5.607 chord_sockets, both join()ed, talking through a recording TCP "
                       "proxy. A (127.0.0.1:%d) holds alpha=beta; B (127.0.0.1:%d) connects to the proxy "
                       "(127.0.0.1:%d), then after 2 s runs get(b\"alpha\") and set(b\"gamma\", b\"delta\"). "
                       "Real clock: times/ids vary per run; node ids are fixed by patched salts."
                       % (PAIR_A_PORT, PAIR_B_PORT, PAIR_PROXY_PORT),
        "A": {"addr": ["127.0.0.1", PAIR_A_PORT], "id": a_id, "salt": SALT_A.decode()},
        "B": {"addr": ["127.0.0.1", PAIR_B_PORT], "id": b_id, "salt": SALT_B.decode()},
        "B_stdout": b_out,
        "read_order": read_order,
        "streams": {k: v.hex() for k, v in streams.items()},
        "frames": {k: [captured_frame(fr, "name") for fr in split_frames(v)] for k, v in streams.items()}}


def gen_live(names):
    out = {}
    if "capture_chord_live.json" in names:
        out["capture_chord_live.json"] = dumps(gen_capture_live())
    if "capture_chord_pair.json" in names:
        out["capture_chord_pair.json"] = dumps(gen_capture_pair())
    return out


# ---------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------

def first_differences(a, b, path="$", out=None, limit=8):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if type(a) != type(b):
        out.append("%s: %r != %r" % (path, a, b))
    elif isinstance(a, dict):
        if list(a) != list(b):
            out.append("%s: keys %s != %s" % (path, list(a), list(b)))
        for k in a:
            if k in b:
                first_differences(a[k], b[k], "%s.%s" % (path, k), out, limit)
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append("%s: length %d != %d" % (path, len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            first_differences(x, y, "%s[%d]" % (path, i), out, limit)
    elif a != b:
        sa, sb = repr(a), repr(b)
        out.append("%s: %s != %s" % (path, sa[:90], sb[:90]))
    return out


def compressed_paths(name, obj):
    """Yield (container, key, flag) for every compressed-bytes field."""
    if name == "compression.json":
        for s in obj["samples"]:
            for m in s["methods"]:
                yield m, "compressed", bytes.fromhex(m["flag"]), False
    elif name == "frames.json":
        for fr in obj["frames"]:
            for e in fr["encodings"][1:]:
                yield e, "frame", bytes.fromhex(e["flag"]), True
            if "as_sent" in fr:
                flag = dict(COMPRESSIONS)[fr["as_sent"]["compression"]]
                yield fr["as_sent"], "frame", flag, True


def lenient_equalise(name, new, old):
    """Replace compressed bytes in `new` by the committed ones when both
    decompress to the same data; returns how many were accepted that way."""
    n = 0
    for (cn, kn, flag, framed), (co, ko, _, _) in zip(compressed_paths(name, new), compressed_paths(name, old)):
        if cn[kn] == co[ko]:
            continue
        a, b = bytes.fromhex(cn[kn]), bytes.fromhex(co[ko])
        if framed:
            a, b = a[4:], b[4:]
        if base.decompress(a, flag) == base.decompress(b, flag):
            cn[kn] = co[ko]
            n += 1
    return n


def check_deterministic(name, new_text, old_text, lenient):
    if new_text == old_text:
        return True, "OK (byte-identical)"
    new, old = json.loads(new_text), json.loads(old_text)
    if lenient:
        n = lenient_equalise(name, new, old)
        if dumps(new) == old_text:
            return True, "OK (identical except %d compressed outputs that decompress to the same bytes)" % n
    diffs = first_differences(new, old)
    return False, "MISMATCH (regenerated vs committed):\n    " + "\n    ".join(diffs or ["formatting only"])


def normalise_live(obj):
    port, sid = obj["server"]["addr"][1], obj["server"]["id"]

    def norm(s):
        return None if s is None else s.replace(sid, "<server-id>").replace(str(port), "<server-port>")
    out = {"keys": list(obj), "description": norm(obj["description"]),
           "server": {"keys": list(obj["server"]), "host": obj["server"]["addr"][0],
                      "salt": obj["server"]["salt"], "protocol_id": obj["server"]["protocol_id"],
                      "id_matches_port": sid == sha384_id(
                          str(("127.0.0.1", port)).encode() + chord.default_protocol.id + SALT_A).decode()},
           "client": obj["client"], "capture_started_unix": type(obj["capture_started_unix"]).__name__,
           "notes": obj["notes"], "phases": []}
    for p in obj["phases"]:
        out["phases"].append({
            "keys": list(p), "phase": p["phase"], "client_sent": p["client_sent"] is not None,
            "connection_closed_by_server": p["connection_closed_by_server"],
            "frames": [structure_of_frame(fr, norm) for fr in p["frames"]]})
    return out


def structure_of_frame(fr, norm=lambda s: s):
    return {"keys": list(fr), "compressed_with": fr["compressed_with"], "msg_type": fr["msg_type"],
            "sender": norm(fr["sender"]),
            "payload": [norm(t) if t is not None else h for t, h in zip(fr["payload_text"], fr["payload"])]}


def normalise_pair(obj):
    return {"keys": list(obj), "description": obj["description"], "A": obj["A"], "B": obj["B"],
            "B_stdout": obj["B_stdout"],
            # Only the shape: how TCP split the bytes depends on timing.
            "read_order": [bool(obj["read_order"]), sorted({tuple(r) for r in obj["read_order"]})],
            "streams": list(obj["streams"]),
            "frames": {d: [structure_of_frame(fr) for fr in frs] for d, frs in obj["frames"].items()}}


def check_live(name, new_text, old_text):
    new, old = json.loads(new_text), json.loads(old_text)
    norm = normalise_live if name == "capture_chord_live.json" else normalise_pair
    a, b = norm(new), norm(old)
    if a == b:
        if name == "capture_chord_live.json":
            n = sum(len(p["frames"]) for p in new["phases"])
        else:
            n = sum(len(v) for v in new["frames"].values())
        return True, "OK (same structure; %d frames: type, compression, sender, payload)" % n
    return False, "MISMATCH (structure):\n    " + "\n    ".join(first_differences(a, b))


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def generate(names):
    out = gen_deterministic([n for n in names if n in DETERMINISTIC])
    live = [n for n in names if n in LIVE]
    if live:
        out.update(gen_live(live))
    return out


def main():
    ap = argparse.ArgumentParser(usage="%(prog)s (--out DIR | --check) [options]", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--out", metavar="DIR", help="write the vector files into DIR")
    mode.add_argument("--check", action="store_true", help="regenerate and compare with tests/vectors/")
    ap.add_argument("--against", metavar="DIR", default=VECTORS_DIR, help="committed files (default tests/vectors)")
    ap.add_argument("--only", metavar="FILES", help="comma-separated file names")
    ap.add_argument("--skip-live", action="store_true", help="leave out the two live captures")
    ap.add_argument("--venv", metavar="DIR", help="run inside this venv, building it if needed")
    ap.add_argument("--lenient-compression", action="store_true",
                    help="accept compressed bytes that decompress to the same data")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.venv:
        argv = sys.argv[1:]
        i = argv.index("--venv") if "--venv" in argv else None
        if i is not None:
            del argv[i:i + 2]
        else:
            argv = [a for a in argv if not a.startswith("--venv=")]
        use_venv(args.venv, argv)

    # The live captures' py2p nodes run like a default venv without
    # python-snappy (so they advertise zlib, gzip, bz2, lzma only), as
    # frames.json's nodes do.
    load_py2p(without_snappy=bool(args._child))
    if args._child == "live-server":
        return child_live_server()
    if args._child in ("pair-A", "pair-B"):
        return child_pair_node(args._child[-1])
    if not args.out and not args.check:
        ap.error("give --out DIR or --check")

    names = ALL_FILES
    if args.only:
        names = [n.strip() for n in args.only.split(",")]
        unknown = [n for n in names if n not in ALL_FILES]
        if unknown:
            ap.error("unknown file(s): %s" % ", ".join(unknown))
    if args.skip_live:
        names = [n for n in names if n not in LIVE]

    generated = generate(names)

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for name in names:
            with open(os.path.join(args.out, name), "w", encoding="ascii", newline="\n") as fh:
                fh.write(generated[name])
            print("wrote %s" % os.path.join(args.out, name))
        return 0

    tmp = tempfile.mkdtemp(prefix="rs2p-vectors-")
    ok = True
    try:
        for name in names:
            with open(os.path.join(tmp, name), "w", encoding="ascii", newline="\n") as fh:
                fh.write(generated[name])
            committed = os.path.join(args.against, name)
            if not os.path.exists(committed):
                good, verdict = False, "MISSING: %s does not exist" % committed
            else:
                with open(committed, encoding="ascii") as fh:
                    old = fh.read()
                if name in DETERMINISTIC:
                    good, verdict = check_deterministic(name, generated[name], old, args.lenient_compression)
                else:
                    good, verdict = check_live(name, generated[name], old)
            ok = ok and good
            print("%-24s %s" % (name, verdict))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    skipped = [n for n in ALL_FILES if n not in names]
    if skipped:
        print("not checked: %s" % ", ".join(skipped))
    print("check %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
