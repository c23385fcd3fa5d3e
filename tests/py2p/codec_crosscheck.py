"""Codec cross-check against the real py2p 0.5.607 (driven by tests/codec/py2p_codec.rs).

Run with a python that has py2p==0.5.607 and python-snappy installed.

Modes:
  make N SEED   Build N random messages with py2p's own InternalMessage and
                print, one JSON object per line, their fields, their id and the
                frame py2p writes for each compression method:
                {"msg_type": hex, "sender": hex, "time": int, "payload": [hex],
                 "id": text, "frames": {"none"|"zlib"|...: hex}}
  check         Read JSON lines {"frame": hex, "methods": [flag hex, ...]} from
                stdin, decode each frame with InternalMessage.feed_string using
                those compression flags, and print one JSON line per input:
                {"msg_type", "sender", "time", "payload", "id",
                 "compression_fail"} or {"error": text}.
"""

import json
import random
import sys

# Importing snappy first is not required (py2p.base imports it itself), but it
# makes a missing python-snappy fail loudly here rather than silently dropping
# the method from py2p's list.
import snappy  # noqa: F401

import py2p
from py2p import base
from py2p.base import InternalMessage, flags

METHODS = [
    ("none", None),
    ("snappy", flags.snappy),
    ("zlib", flags.zlib),
    ("gzip", flags.gzip),
    ("bz2", flags.bz2),
    ("lzma", flags.lzma),
]

MSG_TYPES = [flags.broadcast, flags.whisper, flags.renegotiate]

SPECIAL_TIMES = [
    1, 57, 58, 3363, 3364, 1700000000, 2**32 - 1, 2**32, 2**53 + 1, 2**63,
    2**64 - 1,
]


def preflight():
    assert py2p.__version__ == "0.5.607", py2p.__version__
    for _, flag in METHODS:
        if flag is not None:
            assert flag in base.compression, (
                "py2p.base.compression lacks %r: %r" % (flag, base.compression))


def random_sender(rng):
    roll = rng.random()
    if roll < 0.8:
        # A node id: base58 of a 384-bit value, as py2p makes them.
        return base.to_base_58(rng.getrandbits(384))
    if roll < 0.9:
        return b""
    alphabet = base.base_58.encode()
    return bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 100)))


def random_time(rng):
    # Never 0: InternalMessage(timestamp=0) silently uses the current time.
    if rng.random() < 0.3:
        return rng.choice(SPECIAL_TIMES)
    return rng.randint(1, 2**34)


def random_packet(rng):
    roll = rng.random()
    if roll < 0.1:
        return b""
    if roll < 0.25:
        return bytes([rng.randrange(0x30)])  # looks like a sub-flag
    length = rng.randint(0, 3000)
    if roll < 0.6:
        # Compressible: a short random unit repeated.
        unit = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
        return (unit * (length // len(unit) + 1))[:length]
    if roll < 0.8:
        # Text-like.
        return "".join(
            rng.choice("abcdefghij \u00e9\u4e2d") for _ in range(length // 3)
        ).encode("utf-8")
    return bytes(rng.getrandbits(8) for _ in range(length))


def make(n, seed):
    rng = random.Random(seed)
    out = sys.stdout
    for _ in range(n):
        msg_type = rng.choice(MSG_TYPES)
        sender = random_sender(rng)
        time = random_time(rng)
        payload = [random_packet(rng) for _ in range(rng.randint(1, 6))]
        msg = InternalMessage(msg_type, sender, payload, timestamp=time)
        assert msg.time == time
        frames = {}
        for name, flag in METHODS:
            msg.compression = [flag] if flag is not None else []
            assert msg.compression_used == flag, (name, msg.compression_used)
            frames[name] = bytes(msg.string).hex()
        record = fields(msg)
        record["frames"] = frames
        out.write(json.dumps(record) + "\n")
    out.flush()


def fields(msg):
    """A message's fields as JSON-friendly hex and text."""
    return {
        "msg_type": bytes(msg.msg_type).hex(),
        "sender": bytes(msg.sender).hex(),
        "time": msg.time,
        "payload": [bytes(p).hex() for p in msg.payload],
        "id": msg.id.decode("ascii"),
    }


def check():
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        try:
            frame = bytes.fromhex(req["frame"])
            methods = [bytes.fromhex(m) for m in req["methods"]]
            msg = InternalMessage.feed_string(frame, compressions=methods)
            record = fields(msg)
            record["compression_fail"] = bool(msg.compression_fail)
        except Exception as e:  # report every failure as data, keep going
            record = {"error": "%s: %s" % (type(e).__name__, str(e)[:500])}
        out.write(json.dumps(record) + "\n")
    out.flush()


def main(argv):
    preflight()
    if len(argv) == 4 and argv[1] == "make":
        make(int(argv[2]), int(argv[3]))
    elif len(argv) == 2 and argv[1] == "check":
        check()
    else:
        sys.stderr.write("usage: codec_crosscheck.py make N SEED | check\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
