"""rs2p: a py2p-compatible peer-to-peer DHT for Python, backed by Rust.

``import rs2p as py2p`` gives py2p's layout: ``rs2p.base`` (``protocol``,
``flags``), ``rs2p.mesh.mesh_socket`` and ``rs2p.chord.chord_socket``.
"""

from . import base, mesh, chord, aio
from .base import protocol, flags
from .mesh import mesh_socket
from .chord import chord_socket

__version__ = "0.1.0"
version = __version__
version_info = tuple(map(int, __version__.split(".")))

__all__ = ["base", "mesh", "chord", "protocol", "flags", "mesh_socket", "chord_socket", "__version__"]
