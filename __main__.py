"""The aquascene Pulumi program: load and validate config, compose, export."""

import pulumi

from stacks.config import ConfigError
from stacks.program import program

try:
    program()
except ConfigError as error:
    # RunError prints the message alone, without a Python traceback.
    raise pulumi.RunError(str(error)) from None
