"""`python -m bench NAME [options]`: run the benchmark module bench/NAME.py (dashes become underscores)."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [options]\nbenchmarks: " + ", ".join(available()))
        return 0 if argv else 2
    name = argv[0]
    if name not in available():
        print(f"unknown benchmark {name!r}; choose from: {', '.join(available())}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name.replace('-', '_')}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
