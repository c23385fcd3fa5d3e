"""Type stubs of rs2p.base (py2p.base's names that py2p programs use)."""

__all__ = ["flags", "protocol", "default_protocol", "to_base_58", "from_base_58",
           "message", "protocol_version", "node_policy_version", "version"]

from typing import Any, List, NamedTuple, Tuple, Union

protocol_version: str
node_policy_version: str
version: str

class flags:
    reserved: List[bytes]
    broadcast: bytes
    renegotiate: bytes
    whisper: bytes
    ping: bytes
    pong: bytes
    compression: bytes
    handshake: bytes
    notify: bytes
    peers: bytes
    request: bytes
    resend: bytes
    response: bytes
    store: bytes
    retrieve: bytes
    retrieved: bytes
    bz2: bytes
    gzip: bytes
    lzma: bytes
    zlib: bytes
    snappy: bytes
    bwtc: bytes
    context1: bytes
    defsum: bytes
    dmc: bytes
    fenwick: bytes
    huffman: bytes
    lzjb: bytes
    lzjbr: bytes
    lzp3: bytes
    mtf: bytes
    ppmd: bytes
    simple: bytes

def to_base_58(i: int) -> bytes: ...
def from_base_58(string: Union[str, bytes]) -> int: ...

class protocol(NamedTuple):
    subnet: str
    encryption: str
    @property
    def id(self) -> str: ...

default_protocol: protocol

class connection:
    server: Any
    id: bytes
    def __init__(self, server: Any, id: bytes) -> None: ...
    @property
    def id_10(self) -> int: ...
    def send(self, msg_type: Union[bytes, int], sub_flag: Union[bytes, int], *args: Union[bytes, str, int],
             **kargs: Any) -> bool: ...

class message:
    server: Any
    def __init__(self, raw: Any, server: Any) -> None: ...
    @property
    def msg_type(self) -> bytes: ...
    @property
    def time(self) -> int: ...
    @property
    def time_58(self) -> bytes: ...
    @property
    def sender(self) -> bytes: ...
    @property
    def id(self) -> bytes: ...
    @property
    def packets(self) -> Tuple[bytes, ...]: ...
    def __len__(self) -> int: ...
    def reply(self, *args: Union[bytes, str, int]) -> None: ...
