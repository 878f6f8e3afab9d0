"""``framebus schema``: the topology's JSON Schema, for editor completion."""

from __future__ import annotations

import argparse
import json

from ._args import Commands
from ._exit import EXIT_OK

__all__ = ["register"]


def register(commands: Commands) -> None:
    schema = commands.add_parser("schema", help="print the config's JSON Schema (for editor completion)")
    schema.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    from ..config import Topology

    print(json.dumps(Topology.model_json_schema(), indent=2))
    return EXIT_OK
