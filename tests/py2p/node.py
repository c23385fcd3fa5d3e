"""Runs one real py2p 0.5.607 node and drives it with JSON lines on stdin.

Usage: python node.py chord|mesh [--subnet NAME] [--port N] [--encryption Plaintext|SSL]

Prints {"ready": true, "id": ..., "port": ...} once the node answers a
handshake, then one JSON answer per command line. Keys and values are text
(UTF-8). Commands (field "op"):
  connect {host, port}      join / unjoin          set {key, value}
  get {key, timeout}        delete {key}           keys
  peers                     send {args}            recv
  reply {args}  (replies to every message received so far, then forgets them)
  items                     status                 quit
  held {keys}    (chord) which local tables hold each key: {key: {method: value}}
  lookup {key, timeout}  (chord) the five raw table answers of py2p's
                 per-table lookup (as get does it, minus a race), null = no answer
  whisper {args, id?}  whisper (type and sub-flag 0x02) to peer `id`, or to
                 every peer without `id`
  flood {count, prefix}  `count` broadcasts "<prefix><i>" from this (user)
                 thread as fast as py2p goes (provokes D24)

py2p prints diagnostics on stdout (e.g. message.reply when not connected, and
the network thread's "unhandled exception" lines, which `status` also
reports), so this script writes its JSON answers to the original stdout and
sends py2p's prints nowhere, or to stderr when RS2P_PY2P_VERBOSE is set.
"""
import json
import os
import socket
import sys
import time
import traceback

# py2p writes its own prints to sys.stdout; keep the JSON channel clean.
JSON_OUT = sys.stdout
sys.stdout = sys.stderr if os.environ.get("RS2P_PY2P_VERBOSE") else open(os.devnull, "w")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until_serving(port, deadline=10.0, tls=False):
    """py2p's network thread can die if a peer connects too early (D26):
    poll until the node sends its handshake to a probe connection (over
    TLS for SSL: py2p's acceptor is the TLS server, and its accept blocks
    until the TLS handshake is done)."""
    end = time.time() + deadline
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                s = raw
                if tls:
                    import ssl

                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    s = ctx.wrap_socket(raw)
                got = s.recv(4)
                s.close()
                if got:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def main():
    kind = sys.argv[1]
    args = sys.argv[2:]
    subnet = None
    port = None
    encryption = "Plaintext"
    while args:
        flag = args.pop(0)
        if flag == "--subnet":
            subnet = args.pop(0)
        elif flag == "--port":
            port = int(args.pop(0))
        elif flag == "--encryption":
            encryption = args.pop(0)
    from py2p import base, chord, mesh, utils

    module = chord if kind == "chord" else mesh
    cls = chord.chord_socket if kind == "chord" else mesh.mesh_socket
    prot = base.protocol(module.default_protocol.subnet if subnet is None else subnet, encryption)
    sock = None
    for _ in range(20):
        p = port or free_port()
        try:
            sock = cls("127.0.0.1", p, prot=prot)
            port = p
            break
        except OSError:
            if port:
                raise
            time.sleep(0.05)
    time.sleep(0.2)
    ok = wait_until_serving(port, tls=encryption == "SSL")
    out(ready=ok, id=sock.id.decode(), port=port, protocol_id=prot.id.decode())
    received = []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        op = cmd.get("op")
        try:
            if op == "connect":
                sock.connect(cmd["host"], int(cmd["port"]))
                out(ok=True)
            elif op == "join":
                sock.join()
                out(ok=True)
            elif op == "unjoin":
                sock.unjoin()
                out(ok=True)
            elif op == "set":
                sock.set(cmd["key"].encode(), cmd["value"].encode())
                out(ok=True)
            elif op == "get":
                try:
                    value = sock.__getitem__(cmd["key"].encode(), timeout=float(cmd.get("timeout", 10)))
                    if isinstance(value, (bytes, bytearray)):
                        value = value.decode("utf-8", "replace")
                    out(ok=True, value=value)
                except Exception as e:  # noqa: BLE001 - report every failure kind
                    out(ok=False, error=type(e).__name__, detail=str(e)[:300])
            elif op == "delete":
                sock.set(cmd["key"].encode(), b"")
                out(ok=True)
            elif op == "keys":
                out(ok=True, keys=sorted(k.decode("utf-8", "replace") for k in sock.keys()))
            elif op == "peers":
                rt = {k.decode() if isinstance(k, bytes) else k: v for k, v in sock.routing_table.items()}
                seeding = []
                if kind == "chord":
                    seeding = [h.id.decode() for h in sock.data_storing]
                out(ok=True, routing=sorted(rt), outgoing=sorted(i.decode() for i in sock.outgoing if i),
                    incoming=sorted(i.decode() for i in sock.incoming if i), seeding=sorted(seeding),
                    awaiting=len(sock.awaiting_ids))
            elif op == "send":
                sock.send(*[a.encode() for a in cmd["args"]])
                out(ok=True)
            elif op == "recv":
                msgs = sock.recv(1000)
                received.extend(msgs)
                out(ok=True, messages=[{
                    "sender": m.sender.decode(),
                    "flag": m.packets[0].hex(),
                    "args": [p.decode("utf-8", "replace") for p in m.packets[1:]],
                    "id": m.id.decode(),
                    "time": m.time,
                    "type": m.msg.msg_type.hex(),
                } for m in msgs])
            elif op == "whisper":
                payload = [a.encode() for a in cmd["args"]]
                if cmd.get("id"):
                    sock.routing_table[cmd["id"].encode()].send(base.flags.whisper, base.flags.whisper, *payload)
                else:
                    sock.send(*payload, type=base.flags.whisper, flag=base.flags.whisper)
                out(ok=True)
            elif op == "flood":
                errors = 0
                for i in range(int(cmd["count"])):
                    try:
                        sock.send(("%s%d" % (cmd["prefix"], i)).encode())
                    except Exception:  # noqa: BLE001 - D24: count, keep going
                        errors += 1
                out(ok=True, errors=errors)
            elif op == "reply":
                for m in received:
                    m.reply(*[a.encode() for a in cmd["args"]])
                n = len(received)
                received = []
                out(ok=True, replied=n)
            elif op == "items":
                counts = {}
                if kind == "chord":
                    counts = {k.decode(): len(v) for k, v in sock.data.items()}
                out(ok=True, counts=counts)
            elif op == "held":
                held = {}
                for k in cmd["keys"]:
                    tables = {}
                    for method, h in zip(chord.hashes, chord.get_hashes(k.encode())):
                        value = sock.data[method].get(h)
                        if value is not None:
                            tables[method.decode()] = text(value)
                    held[k] = tables
                out(ok=True, held=held)
            elif op == "lookup":
                # What chord_socket.__lookup does for get(), with one change:
                # the pending entry is registered *before* the retrieve is
                # sent. py2p registers it after sending, so an answer that
                # comes back before the user thread runs again is dropped as
                # unsolicited and the get times out.
                vals = []
                for method, h in zip(chord.hashes, chord.get_hashes(cmd["key"].encode())):
                    node = sock.find(h) if sock.routing_table else None
                    if node in (sock, None):
                        vals.append(utils.awaiting_value(sock.data[method].get(h, "")))
                    else:
                        ret = utils.awaiting_value()
                        sock.requests[method, base.to_base_58(h)] = ret
                        node.send(base.flags.whisper, base.flags.retrieve, method, base.to_base_58(h))
                        vals.append(ret)
                end = time.time() + float(cmd.get("timeout", 5))
                while any(v.value == -1 for v in vals) and time.time() < end:
                    time.sleep(0.02)
                out(ok=True, answers=[None if v.value == -1 else text(v.value) for v in vals])
            elif op == "status":
                st = sock.status
                out(ok=True, status=st if isinstance(st, str) else [str(x)[-300:] for x in st])
            elif op == "quit":
                out(ok=True)
                break
            else:
                out(ok=False, error="unknown op %r" % op)
        except Exception as e:  # noqa: BLE001
            out(ok=False, error=type(e).__name__, detail=traceback.format_exc()[-500:])
    try:
        sock.close()
    except Exception:  # noqa: BLE001
        pass


def text(value):
    """A stored value as JSON text (py2p's local "missing" answer is the str '')."""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def out(**kw):
    JSON_OUT.write(json.dumps(kw) + "\n")
    JSON_OUT.flush()


if __name__ == "__main__":
    main()
