"""``python -m realnet.sweeps``: :func:`realnet.sweeps.runner.main`."""
import sys

from realnet.sweeps.runner import main

sys.exit(main())
