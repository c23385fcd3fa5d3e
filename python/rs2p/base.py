"""py2p's ``base`` module, as far as rs2p covers it: ``flags``, ``protocol``,
base58 helpers, and the message and connection objects handed to handlers."""

import hashlib
import struct
from collections import namedtuple

__all__ = ["flags", "protocol", "default_protocol", "to_base_58", "from_base_58",
           "message", "protocol_version", "node_policy_version", "version"]

protocol_version = "0.5"
node_policy_version = "607"
version = ".".join((protocol_version, node_policy_version))

base_58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class flags():
    """A namespace to hold protocol-defined flags (bytes, as py2p's)"""
    reserved = [struct.pack('!B', x) for x in range(0x30)]

    broadcast = b'\x00'
    renegotiate = b'\x01'
    whisper = b'\x02'
    ping = b'\x03'
    pong = b'\x04'

    compression = b'\x01'
    handshake = b'\x05'
    notify = b'\x06'
    peers = b'\x07'
    request = b'\x08'
    resend = b'\x09'
    response = b'\x0A'
    store = b'\x0B'
    retrieve = b'\x0C'
    retrieved = b'\x0D'

    bz2 = b'\x10'
    gzip = b'\x11'
    lzma = b'\x12'
    zlib = b'\x13'
    snappy = b'\x20'

    bwtc = b'\x14'
    context1 = b'\x15'
    defsum = b'\x16'
    dmc = b'\x17'
    fenwick = b'\x18'
    huffman = b'\x19'
    lzjb = b'\x1A'
    lzjbr = b'\x1B'
    lzp3 = b'\x1C'
    mtf = b'\x1D'
    ppmd = b'\x1E'
    simple = b'\x1F'


def to_base_58(i):
    """Takes an integer and returns its base58 text as bytes (as py2p's)"""
    string = ""
    while i:
        string = base_58[i % 58] + string
        i = i // 58
    return string.encode()  # b'' for 0, as py2p's


def from_base_58(string):
    """Takes a base58 str or bytes and returns its integer value"""
    if isinstance(string, (bytes, bytearray)):
        string = bytes(string).decode()
    decimal = 0
    for char in string:
        decimal = decimal * 58 + base_58.index(char)
    return decimal


class protocol(namedtuple("protocol", ['subnet', 'encryption'])):
    """Defines service variables so that you can reject connections looking
    for a different service (py2p's ``protocol``)"""
    __slots__ = ()

    @property
    def id(self):
        """The SHA-256-based ID of the protocol"""
        h = hashlib.sha256(''.join(str(x) for x in self).encode())
        h.update(protocol_version.encode())
        return to_base_58(int(h.hexdigest(), 16))


default_protocol = protocol('', "Plaintext")


def _flag(f):
    """A flag as an int: py2p's flags are one-byte bytes."""
    if isinstance(f, int):
        return f
    if isinstance(f, str):
        f = f.encode()
    if isinstance(f, (bytes, bytearray)) and len(f) == 1:
        return f[0]
    raise TypeError("a flag is an int or one byte, not %r" % (f,))


def _packet(x):
    """A packet as bytes: str is UTF-8 encoded, other objects str()'d (py2p's way)."""
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    if not isinstance(x, str):
        x = str(x)
    return x.encode()


class connection(object):
    """A peer as seen by a socket: what py2p's handlers get as ``handler``
    and what ``routing_table`` maps ids to. ``send`` answers the peer."""

    def __init__(self, server, id):
        self.server = server
        self.id = id

    @property
    def id_10(self):
        return from_base_58(self.id)

    def send(self, msg_type, sub_flag, *args, **kargs):
        """Sends ``[sub_flag, *args]`` as ``msg_type`` on this peer's
        connection; False if it is no longer connected."""
        payload = [_packet(a) for a in args]
        return self.server._sock.send_to(self.id, _flag(msg_type), _flag(sub_flag), payload)

    def __repr__(self):
        return "connection(%r)" % (self.id,)

    def __eq__(self, other):
        return isinstance(other, connection) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


class message(object):
    """A received message (py2p's ``base.message``)."""

    def __init__(self, raw, server):
        self._raw = raw
        self.server = server

    @property
    def msg_type(self):
        return struct.pack('!B', self._raw.msg_type)

    @property
    def time(self):
        return self._raw.time

    @property
    def time_58(self):
        return to_base_58(self._raw.time)

    @property
    def sender(self):
        return self._raw.sender

    @property
    def id(self):
        return self._raw.id.encode()

    @property
    def packets(self):
        return self._raw.payload

    def __len__(self):
        return sum(len(p) for p in self._raw.payload)

    def __repr__(self):
        packets = self.packets
        return "message(type={}, packets={}, sender={})".format(
            packets[0] if packets else None, packets[1:], self.sender)

    def reply(self, *args):
        """Replies to the sender with ``[flags.whisper, *args]``."""
        self._raw.reply([_packet(a) for a in args])
