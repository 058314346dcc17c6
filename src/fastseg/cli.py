"""The ``fastseg`` command line.

Each subcommand is a function taking the parsed arguments and returning an
exit code. Expected failures (bad paths, bad values) are ``CLIError`` or one of
the usual input errors: they print one line and exit with status 2, never a
traceback.
"""
from __future__ import annotations

import argparse
import json
import sys


class CLIError(Exception):
    """An error whose message is the whole story for the user."""


def _apply_common(args) -> None:
    import fastseg

    if getattr(args, "backend", None):
        fastseg.set_backend(args.backend)
    if getattr(args, "threads", None) is not None:
        fastseg.set_num_threads(args.threads)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["c", "numpy", "cuda"], help="kernel backend (default c)")
    p.add_argument("--threads", type=int, help="threads for the compiled kernels")


def cmd_info(args) -> int:
    from fastseg import info

    data = info.collect()
    print(json.dumps(data, indent=2) if args.json else info.format_info(data))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastseg", description="Medical image segmentation with CNNs on hand-written kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="version, backends, instruction set, OpenMP and threads")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _apply_common(args)
        return args.func(args)
    except (CLIError, ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"fastseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
