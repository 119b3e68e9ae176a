"""What the deployment files' tests share: the repository root, the Dockerfile read as instructions,
docker-compose.yml, and a container command parsed by the `beacon` CLI's own parser. Neither Docker nor
Kubernetes runs in CI, so these files are checked against the code they start."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

from api.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def compose_file() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def _exact(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser and its subcommands' parsers without prefix matching: `--worker 1` would otherwise pass
    as `--workers 1` and break the day another flag starts with `--worker`."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _exact(subparser)
    return parser


def beacon_args(command: object) -> argparse.Namespace:
    """A container's command as the `beacon` CLI parses it, flags spelled out (argparse exits on anything
    unknown)."""
    assert isinstance(command, list), "exec form, so no shell sits between the runtime's signals and beacon"
    assert command[0] == "beacon"
    return _exact(build_parser()).parse_args(command[1:])


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]
