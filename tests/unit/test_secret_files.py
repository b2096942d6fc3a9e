"""Every credential reaches its workload as a read-only mounted file, never as an environment variable
(Checkov CKV_K8S_35), and the providers' keys reach only the services that use them."""

from __future__ import annotations

import pytest

from stacks.catalog import SERVICE_NAMES

ENVS = ("dev", "staging", "prod")
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
PROVIDERS = {"openai_api_key": "sk-openai", "anthropic_api_key": "sk-ant", "smtp_username": "mailer",
             "smtp_password": "mail-secret"}


def pod_specs(rec):
    for r in rec.kubernetes():
        if r.kind not in POD_KINDS:
            continue
        spec = r.plain_inputs["spec"]
        spec = spec["jobTemplate"]["spec"] if r.kind == "CronJob" else spec
        yield f"{r.kind} {r.plain_inputs['metadata']['name']}", spec["template"]["spec"]


def containers(pod):
    return [*pod.get("initContainers", []), *pod["containers"]]


@pytest.mark.parametrize("env", ENVS)
def test_no_container_of_any_stack_has_a_secret_in_its_environment(run_stack, env):
    found = []
    for ref, pod in pod_specs(run_stack(env)):
        for c in containers(pod):
            found += [f"{ref}/{c['name']}: env {e['name']}" for e in c.get("env", [])
                      if "secretKeyRef" in e.get("valueFrom", {})]
            found += [f"{ref}/{c['name']}: envFrom {e['secretRef']['name']}" for e in c.get("envFrom", [])
                      if "secretRef" in e]
    assert found == []


@pytest.mark.parametrize("env", ENVS)
def test_every_mounted_secret_is_read_only_and_0400(run_stack, env):
    checked = 0
    for ref, pod in pod_specs(run_stack(env)):
        secret_volumes = {v["name"]: v for v in pod.get("volumes", [])
                          if "secret" in v or any("secret" in s for s in v.get("projected", {}).get("sources", []))}
        for name, volume in secret_volumes.items():
            mode = volume["secret"].get("defaultMode") if "secret" in volume else volume["projected"].get("defaultMode")
            assert mode == 0o400, (ref, name)
        for c in containers(pod):
            for mount in c.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    assert mount.get("readOnly") is True, (ref, c["name"], mount)
                    checked += 1
    assert checked >= 5  # at least the five services


def test_provider_keys_reach_only_the_services_that_use_them(run_stack):
    rec = run_stack("staging", PROVIDERS)
    expected = {
        "ai-processor": {"openai_api_key", "anthropic_api_key"},
        "distributor": {"smtp_username", "smtp_password"},
        "subscriber-manager": {"smtp_username", "smtp_password"},
        # It runs generation, newsletters and subscriptions in-process.
        "admin-dashboard": {"openai_api_key", "anthropic_api_key", "smtp_username", "smtp_password"},
    }
    for service in SERVICE_NAMES:
        pod = rec.k8s_object("Deployment", service)["spec"]["template"]["spec"]
        files = {item["path"] for v in pod["volumes"] for s in v.get("projected", {}).get("sources", [])
                 for item in s.get("secret", {}).get("items", [])}
        assert files & set(PROVIDERS) == expected.get(service, set()), service
        secret = f"{service}-providers"
        if service in expected:
            assert set(rec.k8s_object("Secret", secret)["stringData"]) == expected[service]
        else:
            with pytest.raises(KeyError):
                rec.k8s_object("Secret", secret)
    assert rec.k8s_object("Secret", "ai-processor-providers")["stringData"]["openai_api_key"] == "sk-openai"
    for r in rec.kubernetes("ConfigMap"):
        assert not any(v in str(r.plain_inputs.get("data", {})) for v in PROVIDERS.values()), r.name


def test_without_provider_keys_no_provider_secret_exists(run_stack):
    rec = run_stack("dev")
    assert not [r for r in rec.kubernetes("Secret") if r.plain_inputs["metadata"]["name"].endswith("-providers")]


def test_the_mail_senders_get_the_relay_and_no_one_else(run_stack):
    rec = run_stack("prod", PROVIDERS)
    for service in SERVICE_NAMES:
        settings = rec.k8s_object("ConfigMap", f"{service}-config")["data"]
        if service in ("distributor", "subscriber-manager", "admin-dashboard"):
            assert (settings["SMTP_HOST"], settings["SMTP_PORT"], settings["SMTP_STARTTLS"]) == (
                "smtp.sendgrid.net", "587", "true")
        else:
            assert "SMTP_HOST" not in settings, service
    dev = run_stack("dev")
    assert "SMTP_HOST" not in dev.k8s_object("ConfigMap", "distributor-config")["data"]  # dev only logs mail
