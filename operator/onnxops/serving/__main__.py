"""Entrypoint of the serving image: ``python -m onnxops.serving`` (also ``onnxops serve``)."""

from __future__ import annotations

import asyncio
import logging
import sys

from .config import ConfigError, build_parser, parse_config
from .logs import setup_logging

log = logging.getLogger("onnxops.serving")


def _event_loop_factory() -> type[asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.Loop


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = parse_config(args)
    except ConfigError as exc:
        print(f"{build_parser().prog}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    setup_logging(cfg.log_level)
    if cfg.verify_only:
        from .verify import verify

        return verify(cfg)
    from .server import serve

    factory = _event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(serve(cfg))


if __name__ == "__main__":
    sys.exit(main())
