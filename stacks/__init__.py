"""The Pulumi program: profiles, configuration and the composition of every environment.

This is all `pulumi up` loads (through __main__.py). The tooling that runs it
offline lives in `tooling/` and imports this package, never the other way round.
"""
