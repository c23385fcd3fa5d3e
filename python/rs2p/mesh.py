"""py2p's ``mesh`` module backed by rs2p: ``mesh_socket``."""

import logging
import threading
from collections import deque, namedtuple

from . import _rs2p
from .base import (flags, protocol, default_protocol, message, connection,
                   _flag, _packet, to_base_58, from_base_58)

__all__ = ["mesh_socket", "protocol", "flags", "default_protocol"]

log = logging.getLogger("rs2p")

# One entry of ``awaiting_ids``: a link still waiting for the peer's handshake.
awaiting_link = namedtuple("awaiting_link", "outgoing addr")

# py2p prints under one lock, so that lines of several sockets do not mix.
_print_lock = threading.Lock()

# rs2p's own options, beyond py2p's constructor arguments.
_EXTRAS = ("data_dir", "key_list", "id", "tls_cert", "tls_key", "tls_trust", "tls_ca", "metrics_addr")


def _trust_text(trust):
    """A trust list as trust-file text: a path to such a file, or an
    iterable of SHA-256 fingerprints (64 hex digits)."""
    import os

    if isinstance(trust, (str, bytes, os.PathLike)):
        with open(trust) as f:
            return f.read()
    return "\n".join(str(t) for t in trust) + "\n"


def _protocol_parts(prot):
    """(subnet, encryption) of rs2p's or py2p's ``protocol`` (or any 2-tuple)."""
    if prot is None:
        return None, None
    try:
        subnet, encryption = prot.subnet, prot.encryption
    except AttributeError:
        try:
            subnet, encryption = prot
        except (TypeError, ValueError):
            raise TypeError("prot must be a protocol(subnet, encryption), not %r" % (prot,))
    if isinstance(subnet, bytes):
        subnet = subnet.decode()
    if isinstance(encryption, bytes):
        encryption = encryption.decode()
    if not isinstance(subnet, str) or not isinstance(encryption, str):
        raise TypeError("protocol subnet and encryption must be str")
    return subnet, encryption


class mesh_socket(object):
    """A mesh node (py2p's ``mesh_socket``), run by rs2p.

    Args:
        addr: The address to bind to (ie: "127.0.0.1")
        port: The port to bind to (0: any free port)
        prot: A ``protocol(subnet, encryption)`` (rs2p's or py2p's)
        out_addr: Your outward facing (host, port)
        debug_level: As py2p's: events at or below this level are printed,
            prefixed by the port (1: links made and closed, handler
            failures; 4: every message received). rs2p's own diagnostics go
            to the ``tracing`` log of the Rust library
        **extras: rs2p's options: ``data_dir`` (keep id, items and peers
            across restarts), ``key_list`` (False: no network-wide key list),
            ``id`` (a fixed base58 id); for encryption "SSL": ``tls_cert`` and
            ``tls_key`` (PEM files; default a self-signed certificate),
            ``tls_trust`` (a trust file, or fingerprints: only those peers
            are accepted), ``tls_ca`` (PEM CA file); chord only:
            ``metrics_addr`` ("host:port" of a Prometheus endpoint)

    Raises:
        socket.error (OSError): the address could not be bound
        ValueError: unknown encryption method
        TypeError: bad argument types
    """
    _kind = "mesh"
    _default_protocol = default_protocol

    def __init__(self, addr, port, prot=None, out_addr=None, debug_level=0, **extras):
        for k in extras:
            if k not in _EXTRAS:
                raise TypeError("unexpected keyword argument %r" % (k,))
        if not isinstance(addr, str):
            raise TypeError("addr must be a str")
        if not isinstance(port, int) or isinstance(port, bool):
            raise TypeError("port must be an int")
        if not 0 <= port < 65536:
            raise ValueError("port must be in [0, 65535]")
        if prot is None:
            prot = self._default_protocol
        subnet, encryption = _protocol_parts(prot)
        out_host = out_port = None
        if out_addr is not None:
            out_host, out_port = out_addr
        self.debug_level = debug_level
        self._handlers = []
        self._queue = deque()
        self._dispatcher = None
        self._closed = False
        self.handler_errors = 0
        if extras.get("tls_trust") is not None:
            extras["tls_trust"] = _trust_text(extras["tls_trust"])
        self._sock = _rs2p.Socket.bind(self._kind, addr, port, subnet, encryption,
                                       out_host, out_port, **extras)
        self.protocol = protocol(subnet, encryption)

    # --- identity ---

    @property
    def id(self):
        """This node's id: base58 text as bytes"""
        return self._sock.id

    @property
    def id_10(self):
        """This node's id as an int"""
        return int(self._sock.id_10)

    @property
    def out_addr(self):
        """The (host, port) peers dial to reach this node"""
        return self._sock.out_addr

    @property
    def addr(self):
        """An alternate binding for ``out_addr``"""
        return self.out_addr

    @property
    def port(self):
        """The port the listener is bound to"""
        return self._sock.local_port

    @property
    def tls_fingerprint(self):
        """SHA-256 of this node's TLS certificate (hex), or None for Plaintext"""
        return self._sock.tls_fingerprint

    @property
    def metrics_addr(self):
        """"host:port" of the Prometheus endpoint, if ``metrics_addr`` was given"""
        return self._sock.metrics_addr

    @property
    def status(self):
        """``"Nominal"`` or a list of recent errors"""
        errors = self._sock.status()
        return "Nominal" if not errors else errors

    # --- peers ---

    @property
    def routing_table(self):
        """{peer id: connection} of handshaken peers"""
        ids = list(self._sock.outgoing()) + list(self._sock.incoming())
        return dict((i, connection(self, i)) for i in ids)

    @property
    def outgoing(self):
        """Ids of peers on connections this node opened"""
        return list(self._sock.outgoing())

    @property
    def incoming(self):
        """Ids of peers on connections they opened"""
        return list(self._sock.incoming())

    @property
    def awaiting_ids(self):
        """Connections still awaiting the peer's handshake, as
        ``awaiting_link(outgoing, addr)`` tuples (``addr``: where we dialed,
        None for a connection the peer opened). py2p lists its connection
        objects; rs2p has none to give before the handshake names the peer."""
        return [awaiting_link(o, a) for o, a in self._sock.awaiting()]

    def __print__(self, *args, **kargs):
        """Prints ``args`` (after the port) if ``level`` (keyword, default 0)
        is at most ``debug_level``, as py2p does"""
        if kargs.get("level", 0) <= self.debug_level:
            with _print_lock:
                print(self.out_addr[1], *args)

    def connect(self, addr, port, id=None, conn_type=None):
        """Connects to (addr, port) and waits for the handshake (at most 5 s,
        GIL released).

        Returns:
            True when connected; False when that peer was already connected,
            or refused us for being on another subnet (py2p's connect does
            not wait for the handshake, so it raises for neither)

        Raises:
            socket.error (OSError): the connection failed or was refused
        """
        peer = self._sock.connect(addr, int(port))
        if peer is not None:
            self.__print__("Connected to node %s at %s:%s" % (peer.decode(), addr, port), level=1)
        return peer is not None

    def disconnect(self, handler):
        """Closes the link to a peer (a connection or an id)"""
        peer = handler.id if isinstance(handler, connection) else handler
        closed = self._sock.disconnect(_packet(peer))
        if closed:
            self.__print__("Connection to node %s has been closed" % (_packet(peer).decode(),), level=1)
        return closed

    def request_peers(self):
        """Asks every peer for its peer list"""
        self._sock.request_peers()

    # --- messages ---

    def send(self, *args, **kargs):
        """Sends ``args`` to every peer (``flag``: packet 0, default broadcast;
        ``type``: the sub-flag, default broadcast)"""
        send_type = _flag(kargs.pop('type', flags.broadcast))
        main_flag = _flag(kargs.pop('flag', flags.broadcast))
        if kargs:
            raise TypeError("unexpected keyword arguments %r" % sorted(kargs))
        self._sock.send(main_flag, send_type, [_packet(a) for a in args])

    def waterfall(self, msg):
        """Relays a received message to every peer; rs2p relays broadcasts
        itself, so this re-sends its packets as a new broadcast."""
        packets = msg.packets
        self._sock.send(flags.broadcast[0], packets[0][0], list(packets[1:]))
        return True

    def recv(self, quantity=1):
        """A message or None (quantity 1), or a list of up to ``quantity``
        messages, oldest first"""
        out = []
        while self._queue and len(out) < quantity:
            out.append(self._queue.popleft())
        if len(out) < quantity:
            out.extend(message(m, self) for m in self._sock.recv(quantity - len(out)))
        if quantity != 1:
            return out
        return out[0] if out else None

    def register_handler(self, method):
        """Registers ``method(msg, handler)`` for messages rs2p's built-in
        handlers did not take. A truthy return keeps the message out of
        ``recv``. Handlers run on one dispatcher thread; an exception in one
        is logged and counted (``handler_errors``)."""
        if not callable(method):
            raise TypeError("a handler must be callable")
        self._handlers.append(method)
        if self._dispatcher is None:
            self._sock.enable_handlers()
            # From now on new messages reach the dispatcher; those already
            # queued are older, so they go first in recv's order.
            self._queue.extend(message(m, self) for m in self._sock.recv(1 << 30))
            t = threading.Thread(target=self._dispatch, name="rs2p-handlers", daemon=True)
            self._dispatcher = t
            t.start()

    def _dispatch(self):
        while not self._closed:
            raw = self._sock.next_handled(0.1)
            if raw is None:
                continue
            msg = message(raw, self)
            self.__print__("Message received: %r" % (msg,), level=4)
            conn = connection(self, raw.sender)
            taken = False
            for h in list(self._handlers):
                try:
                    if h(msg, conn):
                        taken = True
                        break
                except Exception:
                    self.handler_errors += 1
                    log.exception("handler %r failed", h)
                    self.__print__("Handler %r failed" % (h,), level=1)
            if not taken:
                self._queue.append(msg)

    # --- life ---

    def close(self):
        """Closes every connection and stops listening"""
        if self._closed:
            return
        self._closed = True
        self._sock.close()
        d = self._dispatcher
        if d is not None and d is not threading.current_thread():
            d.join(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "%s(%r, id=%r)" % (type(self).__name__, self.out_addr, self.id)
