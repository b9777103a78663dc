"""Placeholder while the harness is written (replaced shortly)."""

from __future__ import annotations

import argparse


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("scenario")
    return parser


def run_bench_command(args: argparse.Namespace) -> int:
    return 1
