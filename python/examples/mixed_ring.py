"""A ring of py2p 0.5.607 and rs2p chord sockets in one Python process
(pip install py2p==0.5.607 first). Each side reads the other's key."""

import socket
import time

import py2p.chord
import rs2p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serving(port):
    """py2p's network thread answers a new connection with its handshake."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return bool(s.recv(4))
    except OSError:
        return False


def poll(f, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        v = f()
        if v:
            return v
        time.sleep(0.1)
    raise TimeoutError


port = free_port()
old = py2p.chord.chord_socket("127.0.0.1", port)    # py2p needs a real port
poll(lambda: serving(port))                           # and must serve before a peer dials it
new = rs2p.chord_socket("127.0.0.1", 0)
new.connect("127.0.0.1", port)                        # rs2p dials, and re-dials if py2p drops the link
old.join()
new.join()
poll(lambda: len(list(new.data_storing)) == 1 and len(list(old.data_storing)) == 1)

new["from rs2p"] = "hello py2p"
old.set("from py2p", "hello rs2p")
print(poll(lambda: old.get("from rs2p", timeout=2)))  # py2p's gets can time out: poll
print(poll(lambda: new.get("from py2p")))
new.close()
old.close()
