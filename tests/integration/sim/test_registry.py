"""labkit.sim in a fresh interpreter (a subprocess): importing it is lazy and light."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_importing_the_package_is_lazy_and_light() -> None:
    code = (
        "import sys, labkit.sim as s; print(sorted(m for m in sys.modules if m.startswith('labkit.sim.') "
        "or m.split('.')[0] in ('h5py', 'torch', 'scipy'))); s.simulate_grf; "
        "print('scipy' in sys.modules, 'h5py' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.splitlines() == ["[]", "False False False"]
