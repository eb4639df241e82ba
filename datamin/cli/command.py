"""What a command group module registers: subcommands, each with its handler."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from datamin.config import Config

Handler = Callable[[argparse.Namespace, Config], int]
"""runs one subcommand with its parsed arguments and the configuration; returns the exit code"""
Add = Callable[..., argparse.ArgumentParser]
"""``add(name, help, handler, description=None)``: a new subcommand's parser"""
