from tooling.cli import run

run()
