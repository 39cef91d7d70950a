"""labkit.models in a fresh interpreter (a subprocess): it loads no Lightning."""

from __future__ import annotations


def test_models_import_no_lightning() -> None:
    import subprocess
    import sys

    code = "import labkit.models as m, sys; m.MLP; m.SmallCNN; print(any(k.startswith('lightning') for k in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
