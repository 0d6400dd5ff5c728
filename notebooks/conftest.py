"""pytest --nbmake runs these notebooks in quick mode (each under ~2 minutes on 2 CPU cores)."""

import os

os.environ.setdefault("SCSEG_NOTEBOOK_QUICK", "1")
