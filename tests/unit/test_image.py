"""app/Dockerfile, read offline: what tests/image cannot see by running the image.

The base is one pinned line naming its Debian release; the runtime's pg_dump must be at least the
PostgreSQL major the stacks run, whose one place is components/postgres.py (every other
PostgreSQL the stacks can run — CloudNativePG, RDS, a stack file's image — must not be newer);
the dependencies come from the lock with hashes; no `syntax` line (it makes every BuildKit
build fetch a frontend image, which offline and mirrored builds cannot).
"""

from __future__ import annotations

import json
import re

from components import postgres
from components.aws.managed_data import RdsPostgresArgs
from components.kube import image_version
from tests.conftest import REPO
from tooling import lock
from tooling.stackfile import load_stack_file

DOCKERFILE = (REPO / "app" / "Dockerfile").read_text()
IGNORE = (REPO / "app" / "Dockerfile.dockerignore").read_text().splitlines()


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in DOCKERFILE.splitlines() if not l.lstrip().startswith("#")))
    return [l.strip() for l in joined.splitlines() if l.strip()]


def major(version: str) -> int:
    return int(re.match(r"\d+", version).group())


def test_no_syntax_directive():
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE, re.MULTILINE | re.IGNORECASE)


def test_one_pinned_base_names_its_debian_release_and_every_stage_starts_from_it():
    froms = [i.split()[1:] for i in instructions() if i.upper().startswith("FROM ")]
    assert froms[0][1:] == ["AS", "base"]
    python, release = lock.image_python(REPO)
    assert froms[0][0].split("@")[0] == f"python:{python}-slim-{release}"
    assert all(f[0] == "base" for f in froms[1:]), froms


def test_pg_dump_is_checked_against_the_postgresql_major_the_stacks_run():
    arg = re.search(r"^ARG POSTGRES_MAJOR=(\d+)$", DOCKERFILE, re.MULTILINE)
    assert arg, "app/Dockerfile: ARG POSTGRES_MAJOR=<major> (the build checks pg_dump against it)"
    assert int(arg.group(1)) == major(image_version(postgres.IMAGE))
    run = [i for i in instructions() if "pg_dump --version" in i]
    assert len(run) == 1 and '-lt "${POSTGRES_MAJOR}"' in run[0] and "exit 1" in run[0]


def test_no_postgresql_the_stacks_can_run_is_newer_than_the_images_pg_dump():
    servers = {"components.postgres.IMAGE": image_version(postgres.IMAGE),
               "components.postgres.CLOUDNATIVE_PG_IMAGE": image_version(postgres.CLOUDNATIVE_PG_IMAGE),
               "RdsPostgresArgs.engine_version": RdsPostgresArgs.__dataclass_fields__["engine_version"].default}
    for env in ("dev", "staging", "prod"):
        config = load_stack_file(env, REPO).config.get("aquascene:postgres")
        image = json.loads(config).get("image") if config else None
        if image:
            servers[f"Pulumi.{env}.yaml aquascene:postgres.image"] = image_version(image)
    limit = major(image_version(postgres.IMAGE))
    assert {k: v for k, v in servers.items() if major(v) > limit} == {}


def test_dependencies_are_installed_from_the_lock_with_hashes_and_nothing_else():
    pip = [i for i in instructions() if "pip install" in i]
    assert len(pip) == 1, pip
    assert "--require-hashes" in pip[0] and "--no-deps" in pip[0] and "--only-binary=:all:" in pip[0]
    assert f"COPY {lock.LOCK.as_posix()} " in DOCKERFILE
    assert f"!{lock.LOCK.as_posix()}" in IGNORE and "pip check" in pip[0]
    assert not [i for i in instructions() if "pyproject.toml" in i]  # nothing resolved from the ranges


def test_runtime_runs_as_10001_with_a_healthcheck_and_no_installer():
    runtime = DOCKERFILE.split("FROM base AS runtime")[1]
    assert "USER 10001:10001" in runtime
    assert 'HEALTHCHECK' in runtime and '"python", "-m", "app", "healthcheck"' in runtime
    assert "pip uninstall" in DOCKERFILE.split("FROM base AS runtime")[0]
    assert "for m in ('pip', 'setuptools') if importlib.util.find_spec(m)" in runtime  # the build checks
