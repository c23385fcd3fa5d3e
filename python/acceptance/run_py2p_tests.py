"""py2p's own test suite against rs2p (issue 24's acceptance test).

Lays out a throw-away package named ``py2p`` in a temporary directory: a copy
of the installed py2p 0.5.607 (``pip install py2p==0.5.607`` in this venv
first; its files are never committed) whose ``mesh`` module is replaced by
one re-exporting ``rs2p.mesh``. Then runs py2p's unchanged test modules with
pytest from there.

Usage: python run_py2p_tests.py [--with-base] [test_mesh.py ...] [-- pytest args]

--with-base also makes py2p.base's ``protocol``, ``to_base_58``,
``from_base_58`` and ``flags`` rs2p's (appended to a copy of py2p's base.py,
whose other contents, such as InternalMessage and compress, rs2p.base does
not cover), for ``test_base.py``.
"""

import os
import shutil
import subprocess
import sys
import tempfile

SHIM = '''"""py2p.mesh replaced by rs2p's (rs2p acceptance run).

mesh_socket (and protocol, default_protocol, flags) are rs2p's. py2p's own
connection and daemon classes stay importable from the original module
(renamed _py2p_mesh), because py2p.test/__init__ imports every test module,
and py2p.chord imports them at import time.
"""
from ._py2p_mesh import *  # noqa: F401,F403
from ._py2p_mesh import mesh_connection, mesh_daemon  # noqa: F401
from rs2p.mesh import mesh_socket, protocol, default_protocol, flags  # noqa: F401
'''


def main(argv):
    with_base = "--with-base" in argv
    argv = [a for a in argv if a != "--with-base"]
    tests, extra = argv, []
    if "--" in argv:
        i = argv.index("--")
        tests, extra = argv[:i], argv[i + 1:]
    tests = tests or ["test_mesh.py"]
    import py2p  # the installed one

    src = os.path.dirname(py2p.__file__)
    tmp = tempfile.mkdtemp(prefix="py2p-on-rs2p-")
    dst = os.path.join(tmp, "py2p")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    os.rename(os.path.join(dst, "mesh.py"), os.path.join(dst, "_py2p_mesh.py"))
    with open(os.path.join(dst, "mesh.py"), "w") as f:
        f.write(SHIM)
    if with_base:
        with open(os.path.join(dst, "base.py"), "a") as f:
            f.write("\n# rs2p acceptance run: these names are rs2p's\n"
                    "from rs2p.base import protocol, to_base_58, from_base_58, flags  # noqa: E402,F401\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = tmp + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"] + \
        [os.path.join(dst, "test", t) for t in tests] + extra
    try:
        return subprocess.call(cmd, cwd=tmp, env=env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
