"""`python -m lib.worker`: the worker process (see lib/worker/process.py)."""
from __future__ import annotations

import logging
import sys

from lib.errors import UserError
from lib.logs import configure_logging
from lib.settings import load_settings
from lib.worker.process import run

if __name__ == "__main__":
    configure_logging()
    try:
        settings = load_settings()
    except UserError as exc:
        logging.getLogger("lib.worker").error("%s", exc.message)
        sys.exit(2)
    sys.exit(run(settings))
