"""py2p's ``chord`` module backed by rs2p: ``chord_socket``, a distributed
hash table that shares rings with py2p 0.5.607's chord sockets."""

import random

from .base import protocol, flags, connection, _packet, to_base_58, from_base_58
from .mesh import mesh_socket

__all__ = ["chord_socket", "protocol", "flags", "default_protocol", "hashes"]

default_protocol = protocol('chord', "Plaintext")
hashes = ['sha1', 'sha224', 'sha256', 'sha384', 'sha512']

_unset = object()


def _key(key):
    """A key as bytes, as py2p makes it: bytes as is, anything else str()'d
    and UTF-8 encoded."""
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    return str(key).encode()


class chord_socket(mesh_socket):
    """A chord node (py2p's ``chord_socket``), run by rs2p. It starts
    leeching: call ``join()`` to store data for the ring.

    Args: as :class:`rs2p.mesh.mesh_socket` (default protocol
    ``protocol('chord', 'Plaintext')``).
    """
    _kind = "chord"
    _default_protocol = default_protocol

    # --- ring ---

    def join(self):
        """Tells the node to start seeding the chord table"""
        self._sock.join()

    def unjoin(self):
        """Tells the node to stop seeding; its items go to their new owners"""
        self._sock.unjoin()

    def leave(self, timeout=10):
        """rs2p: unjoin and wait (GIL released) until every handed-off item is
        confirmed by its new owner, or ``timeout`` seconds"""
        self._sock.leave(float(timeout))

    @property
    def leeching(self):
        return self._sock.leeching

    @property
    def data_storing(self):
        """The seeding peers (connections)"""
        return (connection(self, i) for i in self._sock.data_storing())

    def _responsible(self, r):
        if r == "self":
            return self
        if r is None:
            return None
        return connection(self, r)

    def find(self, key):
        """The node responsible for an int key: this socket or a connection"""
        return self._responsible(self._sock.find(str(int(key))))

    def find_prev(self, key):
        return self._responsible(self._sock.find_prev(str(int(key))))

    @property
    def next(self):
        return self._responsible(self._sock.next())

    @property
    def prev(self):
        return self._responsible(self._sock.prev())

    def disconnect_least_efficient(self):
        return self._sock.disconnect_least_efficient()

    def dump_data(self, start=0, end=None):
        """{method: {key: value}} of the items this node holds in [start, end)"""
        out = dict((m, {}) for m in hashes)
        for method, key, value in self._sock.dump_data(str(int(start)),
                                                       None if end is None else str(int(end))):
            out.setdefault(method, {})[int(key)] = value
        return out

    # --- the table ---

    def __getitem__(self, key, timeout=10):
        """The value at ``key`` (bytes), agreed by 3 of the 5 tables.

        Raises:
            KeyError: no agreed-upon value
            socket.timeout: not enough answers within ``timeout`` seconds
        """
        return self._sock.get(_key(key), float(timeout))

    def get(self, key, ifError=None, timeout=10):
        """The value at ``key``, or ``ifError`` on any exception (as py2p)"""
        try:
            return self.__getitem__(key, timeout=timeout)
        except Exception:
            return ifError

    def __setitem__(self, key, value):
        """Stores ``value`` at ``key`` in the five tables (an empty value deletes)"""
        self._sock.set(_key(key), _packet(value))

    def set(self, key, value):
        return self.__setitem__(key, value)

    def __delitem__(self, key):
        key = _key(key)
        if key not in self._sock.keys():
            raise KeyError(key)
        self._sock.set(key, b'')

    def update(self, update_dict):
        """Equivalent to ``dict.update``"""
        for key, value in dict(update_dict).items():
            self[key] = value

    def keys(self):
        """An iterator of the network-wide keys this node knows"""
        return iter(self._sock.keys())

    def __iter__(self):
        return self.keys()

    def values(self):
        return (self[key] for key in self.keys())

    def items(self):
        return ((key, self[key]) for key in self.keys())

    def pop(self, key, *args):
        """The value at ``key``, deleting it; ``pop(key, default)`` returns
        default on any exception"""
        if len(args):
            ret = self.get(key, args[0])
            if ret is not args[0]:
                del self[key]
        else:
            ret = self[key]
            del self[key]
        return ret

    def popitem(self):
        """A (key, value) pair, deleting it"""
        for key in self.keys():
            return (key, self.pop(key))
        raise KeyError("popitem(): no keys")

    def copy(self):
        """A dict of every key and value"""
        return dict(self.items())
