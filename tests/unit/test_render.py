"""`aquascene render`: files, validation, resources.json and exit codes."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tooling.cli import main
from tests.conftest import REPO


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Each stack rendered once through the CLI: (exit code, printed summary, output directory)."""
    import contextlib
    import io

    results = {}
    for env in ("dev", "staging", "prod"):
        out = tmp_path_factory.mktemp("render") / env
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["render", env, "--out", str(out), "--project-dir", str(REPO)])
        results[env] = (code, printed.getvalue(), out)
    return results


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_render_validates_every_object(env, rendered):
    code, printed, out = rendered[env]
    assert code == 0
    assert " 0 invalid" in printed
    deployments = sorted(p.name for p in (out / "Deployment").iterdir() if p.name.startswith(f"aquascene-{env}."))
    assert deployments == [
        f"aquascene-{env}.{name}.yaml"
        for name in sorted(["content-manager", "ai-processor", "web-scraper", "distributor", "subscriber-manager",
                            "admin-dashboard",
                            # statefulset mode runs PgBouncer as a Deployment; CloudNativePG's operator runs prod's
                            *(["postgres-pooler"] if env != "prod" else [])])
    ]
    manifest = yaml.safe_load((out / "Deployment" / f"aquascene-{env}.ai-processor.yaml").read_text())
    assert list(manifest)[:3] == ["apiVersion", "kind", "metadata"]
    port = manifest["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert port == 8001 and isinstance(port, int)  # integral floats restored


def test_resources_json_has_the_stack_export_shape(rendered):
    code, _, out = rendered["prod"]
    assert code == 0
    document = json.loads((out / "resources.json").read_text())
    assert document["version"] == 3
    resources = document["deployment"]["resources"]
    for entry in resources:
        assert {"urn", "type", "custom", "inputs", "dependencies", "propertyDependencies"} <= set(entry)
    types = {r["type"] for r in resources}
    assert {"pulumi:pulumi:Stack", "aquascene:app:AppService", "kubernetes:apps/v1:Deployment"} <= types
    assert "docker:index/image:Image" not in types  # prod promotes staging's digest, it builds nothing
    deployment = next(r for r in resources if r["type"] == "kubernetes:apps/v1:Deployment"
                      and r["urn"].endswith("::content-manager-deployment"))
    component = next(r for r in resources if r["urn"] == deployment["parent"])
    assert component["type"] == "aquascene:app:AppService"
    # prod deploys through the provider of the EKS cluster it creates
    assert deployment["provider"].startswith(
        "urn:pulumi:prod::aquascene::aquascene:aws:EksCluster$pulumi:providers:kubernetes::")


def test_secrets_are_redacted_in_resources_json(tmp_path):
    """A Secret declared by the program never reaches disk in plaintext."""
    import pulumi
    import pulumi_kubernetes as k8s

    from tooling.recording import record
    from tooling.render import export_document, manifest_of

    def program():
        k8s.core.v1.Secret("s", metadata={"name": "s"}, string_data={"password": pulumi.Output.secret("hunter2")})

    rec = record(program)
    text = json.dumps(export_document(rec))
    assert "hunter2" not in text
    assert manifest_of(rec.kubernetes("Secret")[0])["stringData"] == {"password": "[secret]"}


def test_config_error_exits_2_naming_the_key(tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "Pulumi.broken.yaml").write_text(
        "config:\n  aquascene:environment: dev\n  aquascene:services:\n    ai-processor:\n      replicas: 0\n"
    )
    assert main(["render", "broken", "--out", str(tmp_path / "out"), "--project-dir", str(project)]) == 2
    err = capsys.readouterr().err
    assert "aquascene:services.ai-processor.replicas: Input should be greater than or equal to 1 (got 0)" in err
    assert not (tmp_path / "out").exists()  # nothing half-done


def test_unknown_stack_exits_2(tmp_path, capsys):
    assert main(["render", "nope", "--project-dir", str(REPO), "--out", str(tmp_path / "o")]) == 2
    assert "no stack file Pulumi.nope.yaml" in capsys.readouterr().err


def test_refuses_to_wipe_a_foreign_directory(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["render", "dev", "--project-dir", str(REPO), "--out", str(tmp_path)]) == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_invalid_object_exits_1(tmp_path, capsys, monkeypatch):
    from components import kube

    # A typo in a shared convention: strict schemas reject the unknown field.
    monkeypatch.setattr(kube, "container_security_context", lambda: {"runAsNonRoot": True, "capabilitiez": {}})
    assert main(["render", "dev", "--project-dir", str(REPO), "--out", str(tmp_path / "o")]) == 1
    out = capsys.readouterr().out
    assert "INVALID  Deployment/content-manager" in out


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_a_render_is_the_same_bytes_every_time(env, rendered, tmp_path):
    """`python -m tooling` (and the console script) run `main` and exit with its code, and every
    run writes the same bytes in the same order: here another process, with another hash seed
    (the SDK keeps dependencies in sets), and its own thread timing (which orders registrations)."""
    import os
    import subprocess
    import sys

    out = tmp_path / env
    process = subprocess.run([sys.executable, "-m", "tooling", "render", env, "--out", str(out),
                              "--project-dir", str(REPO)], capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert process.returncode == 0, process.stderr
    code, printed, in_process = rendered[env]
    def summary(text: str, where: object) -> list[str]:  # the same report, but for where and how long
        return text.replace(str(where), "OUT").splitlines()[:-1]
    assert summary(process.stdout, out) == summary(printed, in_process)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(in_process) for p in in_process.rglob("*") if p.is_file())
    assert all((out / f).read_bytes() == (in_process / f).read_bytes() for f in files)
    missing = subprocess.run([sys.executable, "-m", "tooling", "render", "nosuchstack", "--out", str(tmp_path / "x"),
                              "--project-dir", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and "nosuchstack" in missing.stderr
