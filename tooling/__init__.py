"""The `aquascene` command and what it is built from: the recording engine, render, policy,
check, stack-file reading and schema validation.

A user runs these instead of, or beside, the Pulumi engine. They import the
program (`stacks`) to run it under mocks; the program never imports them.
"""
