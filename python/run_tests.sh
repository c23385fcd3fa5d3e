#!/bin/sh
# The Python package's tests in one command: a venv (VENV, default
# ../target/pyvenv), the extension built into it once per run (pip install
# ./python, maturin, release), py2p 0.5.607 and pytest from PyPI, then
# python/tests, py2p's own test_mesh.py and test_base.py against rs2p, and
# mypy's stubtest on the type stubs. `cargo test` at the root runs the same
# (tests/python.rs) with a dev build.
#
#   python/run_tests.sh            # everything
#   python/run_tests.sh -k mixed   # extra arguments go to pytest on python/tests
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
venv=${VENV:-$root/target/pyvenv}
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/pip" install -q pytest pytest-xdist mypy cryptography py2p==0.5.607
"$venv/bin/pip" install -q "$here"
# pytest (not python -m pytest) from python/, so that `import rs2p` is the
# installed package, not the source tree without its extension.
cd "$here"
"$venv/bin/pytest" -q tests "$@"
"$venv/bin/python" acceptance/run_py2p_tests.py test_mesh.py -- -q -n 8
"$venv/bin/python" acceptance/run_py2p_tests.py --with-base test_base.py -- -q
(cd /tmp && "$venv/bin/python" -m mypy.stubtest rs2p --allowlist "$here/stubtest-allowlist.txt")
