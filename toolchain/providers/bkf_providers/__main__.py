"""Plugin entry point: ``python -m bkf_providers <tls|command> [engine-address] [engine flags...]``."""

from __future__ import annotations

import importlib
import sys

from . import PROVIDERS


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in PROVIDERS:
        sys.exit(f"usage: python -m bkf_providers {{{'|'.join(PROVIDERS)}}} [engine-address]")
    module = importlib.import_module(PROVIDERS[args[0]])
    from .server import serve

    serve(module.make_provider, args[1:])


if __name__ == "__main__":
    main()
