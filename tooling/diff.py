"""`aquascene diff STACK_A STACK_B`: how two environments differ, setting by setting.

Both stacks are rendered offline (the recording engine, as `aquascene render`), so
what is compared is the effective configuration (profile merged with
Pulumi.<stack>.yaml, as validated) and, where a value is derived, the rendered
objects themselves: a Deployment's replicas, an HPA's bounds, which alerts exist,
which add-ons are installed or only asserted, the TLS issuer routes use. Policy
levels come from each stack's policy pack config (policies/config/ENV.json).
Rows are grouped by part and keyed by setting; services are whatever the catalog lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from tooling.recording import Recording, restore_ints

ABSENT = "-"  # the setting does not exist in that stack (another mode, another service)
ALERT_RULE_FILES = "prometheus-rules"


@dataclass(frozen=True)
class Row:
    part: str
    setting: str
    a: Any
    b: Any

    @property
    def differs(self) -> bool:
        return self.a != self.b


@dataclass(frozen=True)
class Comparison:
    stack_a: str
    stack_b: str
    rows: list[Row]
    invalid: dict[str, int]  # stack -> rendered objects its Kubernetes schemas reject

    @property
    def differences(self) -> list[Row]:
        return [r for r in self.rows if r.differs]


def compare(stack_a: str, stack_b: str, project_dir: Path) -> Comparison:
    """Render both stacks (raises ConfigError / StackFileError) and compare them setting by setting."""
    from tooling.render import record_stack
    from tooling.stackfile import load_stack_file

    recordings = {s: record_stack(load_stack_file(s, project_dir)) for s in dict.fromkeys((stack_a, stack_b))}
    facts = {s: settings(rec, project_dir) for s, rec in recordings.items()}
    a, b = facts[stack_a], facts[stack_b]
    keys = list(dict.fromkeys([*a, *b]))
    order = {part: i for i, part in enumerate(dict.fromkeys(part for part, _ in keys))}
    keys.sort(key=lambda key: order[key[0]])  # stable: each part's rows together, in display order
    rows = [Row(part, setting, a.get((part, setting), ABSENT), b.get((part, setting), ABSENT))
            for part, setting in keys]
    return Comparison(stack_a, stack_b, rows, {s: count_invalid(rec) for s, rec in recordings.items()})


def count_invalid(recording: Recording) -> int:
    """Objects the stack's Kubernetes schemas reject (what makes `render` exit 1)."""
    from tooling import kubeschema
    from tooling.render import manifest_of

    version = recording.result.config.kubernetes.version
    manifests = (manifest_of(r) for r in recording.kubernetes())
    return sum(1 for m in manifests if "kind" in m and kubeschema.validate(m, version).status == "invalid")


# ------------------------------------------------------------------ settings


def settings(recording: Recording, project_dir: Path) -> dict[tuple[str, str], Any]:
    """(part, setting) -> value of one rendered stack, in display order."""
    config = recording.result.config
    found: dict[tuple[str, str], Any] = {}

    def put(part: str, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            found[(part, key)] = value

    put("image", flatten(config.image.model_dump()) | flatten(config.images.model_dump(), "images."))
    put("app", flatten(config.app.model_dump()))
    workloads = _workloads(recording)
    for name, service in config.services.items():
        put(f"service {name}", flatten(service.model_dump()) | workloads.get(name, {}))
    pg = config.postgres.model_dump()
    pooler, backup = pg.pop("pooler"), pg.pop("continuous_backup")
    put("postgresql", flatten(pg) | _postgres_rendered(recording))
    put("pooler", flatten(pooler) | _pooler_rendered(recording))
    put("redis", flatten(config.redis.model_dump()))
    put("object store", flatten(config.object_store.model_dump()))
    put("backups", flatten(config.backups.model_dump()) | flatten(backup, "postgres continuous_backup.")
        | {"backup CronJobs (rendered)": sorted(o["metadata"]["name"] for o in _objects(recording, "CronJob")
                                                 if "backup" in o["metadata"]["name"])})
    put("monitoring", flatten(config.monitoring.model_dump()) | _alerts(recording))
    put("routes", flatten(config.ingress.model_dump()) | _routes(recording))
    put("aws", flatten(config.aws.model_dump()) | {
        "AWS resources (rendered)": sum(1 for r in recording.resources if r.custom and r.type.startswith("aws:"))})
    put("add-ons", _addons(recording))
    put("policy levels", _policy_levels(project_dir, config.environment))
    return found


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (lists and scalars stay whole)."""
    if not isinstance(values, Mapping) or not values:
        return {prefix.rstrip("."): values} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, Mapping) and value else
                    {f"{prefix}{key}": value})
    return flat


def _objects(recording: Recording, kind: str) -> list[dict[str, Any]]:
    return [restore_ints(r.plain_inputs) for r in recording.kubernetes(kind)]


def _workloads(recording: Recording) -> dict[str, dict[str, Any]]:
    """Per app service (its `app.kubernetes.io/name`): rendered replicas, HPA bounds, container resources."""
    found: dict[str, dict[str, Any]] = {}
    for deployment in _objects(recording, "Deployment"):
        labels = deployment["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/component") != "api":
            continue
        name, rendered = labels["app.kubernetes.io/name"], deployment["metadata"]["name"]
        row = found.setdefault(name, {})
        row[f"Deployment {rendered} replicas (rendered)"] = deployment["spec"].get("replicas", "(HPA)")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        row[f"Deployment {rendered} resources (rendered)"] = _resources(container.get("resources", {}))
    for hpa in _objects(recording, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        for name, row in found.items():
            if f"Deployment {target} replicas (rendered)" in row:
                row[f"HPA {hpa['metadata']['name']} min..max (rendered)"] = (
                    f"{hpa['spec'].get('minReplicas', 1)}..{hpa['spec']['maxReplicas']}")
    return found


def _resources(resources: Mapping[str, Any]) -> str:
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    return ", ".join([*(f"{k} {v}" for k, v in sorted(requests.items())),
                      *(f"{k} limit {v}" for k, v in sorted(limits.items()))])


def _postgres_rendered(recording: Recording) -> dict[str, Any]:
    key = "instances (rendered)"
    clusters = [restore_ints(r.plain_inputs) for r in recording.kubernetes("Cluster")
                if r.type.startswith("kubernetes:postgresql.cnpg.io")]
    if clusters:
        return {key: f"{clusters[0]['spec']['instances']} (CloudNativePG Cluster)"}
    sets = [o for o in _objects(recording, "StatefulSet")
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "database"]
    if sets:
        return {key: f"{sum(o['spec'].get('replicas', 1) for o in sets)} (StatefulSets)"}
    rds = [r.plain_inputs for r in recording.of_type("aws:rds/instance:Instance")]
    return {key: f"RDS, multi-AZ {bool(rds[0].get('multiAz'))}"} if rds else {}


def _pooler_rendered(recording: Recording) -> dict[str, Any]:
    from components.pooler import COMPONENT

    key = "instances (rendered)"
    poolers = _objects(recording, "Pooler")
    if poolers:
        return {key: f"{sum(p['spec'].get('instances', 1) for p in poolers)} (CloudNativePG Pooler)"}
    deployments = [o for o in _objects(recording, "Deployment")
                   if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == COMPONENT]
    if deployments:
        return {key: f"{sum(o['spec'].get('replicas', 1) for o in deployments)} (PgBouncer Deployment)"}
    return {key: "RDS Proxy" if recording.of_type("aws:rds/proxy:Proxy") else "none"}


def _alerts(recording: Recording) -> dict[str, Any]:
    """Each alert rule Prometheus is given: present or absent; and whether anything routes alerts."""
    alerts: dict[str, Any] = {}
    for config_map in _objects(recording, "ConfigMap"):
        if config_map["metadata"]["name"] != ALERT_RULE_FILES:
            continue
        for text in (config_map.get("data") or {}).values():
            for group in (yaml.safe_load(text) or {}).get("groups", []):
                for rule in group.get("rules", []):
                    if "alert" in rule:
                        alerts[f"alert {rule['alert']}"] = "present"
    alertmanagers = [o for o in _objects(recording, "StatefulSet") + _objects(recording, "Deployment")
                     if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "alertmanager"]
    routed = sum(o["spec"].get("replicas", 1) for o in alertmanagers)
    return {"Alertmanager replicas (rendered)": routed, **dict(sorted(alerts.items()))}


def _routes(recording: Recording) -> dict[str, Any]:
    hosts = sorted({h for o in _objects(recording, "HTTPRoute") for h in o["spec"].get("hostnames", [])}
                   | {rule["host"] for o in _objects(recording, "Ingress") for rule in o["spec"].get("rules", [])})
    issuers = sorted(o["metadata"]["name"] for o in _objects(recording, "ClusterIssuer"))
    certificates = sorted(o["metadata"]["name"] for o in _objects(recording, "Certificate"))
    return {"hosts (rendered)": hosts, "TLS issuer (rendered ClusterIssuer)": issuers or "none",
            "certificates (rendered)": certificates}


def _addons(recording: Recording) -> dict[str, Any]:
    """Each add-on chart: installed (at which version), asserted present, or not used; and every
    other object the stack only looks up (a platform team's namespaces and operators)."""
    from components.addons import CHARTS, PRESENCE

    installed = {str(r.plain_inputs.get("chart")).rsplit("/", 1)[-1]: r.plain_inputs.get("version")
                 for t in ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart") for r in recording.of_type(t)}
    looked_up = {name: type_token.rsplit(":", 1)[-1] for type_token, name in recording.reads
                 if type_token.startswith("kubernetes:")}
    found: dict[str, Any] = {}
    for key, chart in CHARTS.items():
        present = PRESENCE.get(key)
        if chart.name in installed:
            found[key] = f"installed, chart {installed[chart.name]}"
        elif present is not None and looked_up.pop(present[1], None):
            found[key] = f"asserted present ({present[1]})"
        else:
            found[key] = "not used"
    for name, kind in sorted(looked_up.items()):
        found[f"asserted {kind} {name}"] = "looked up at preview"
    return found


def _policy_levels(project_dir: Path, environment: str) -> dict[str, Any]:
    """Every rule's enforcement level (and its settings) under the stack's policy pack config."""
    from tooling import policy

    path = policy.default_config_path(project_dir, environment)
    pack = policy.load_pack_config(path) if path is not None else policy.PackConfig()
    found: dict[str, Any] = {}
    for rule in policy.RULES:
        level = pack.level(rule)
        found[rule.name] = getattr(level, "value", str(level))
        for key, value in (pack.policy_config(rule.name) or {}).items():
            found[f"{rule.name}.{key}"] = value
    return found


# ------------------------------------------------------------------ output


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value if value else "''"
    return json.dumps(value)


def format_table(comparison: Comparison, show_all: bool = False) -> list[str]:
    a, b = comparison.stack_a, comparison.stack_b
    rows = comparison.rows if show_all else comparison.differences
    if not comparison.differences:
        lines = [f"{a} and {b}: nothing differs ({len(comparison.rows)} settings compared)"]
        if not show_all:
            return lines
    else:
        lines = [f"{a} vs {b}: {len(comparison.differences)} of {len(comparison.rows)} settings differ"]
    width = max([len(r.setting) for r in rows] + [7])
    value_width = max([len(_show(r.a)) for r in rows] + [len(a)])
    value_width = min(value_width, 48)
    part = None
    for row in rows:
        if row.part != part:
            part = row.part
            lines += ["", f"[{part}]", f"  {'SETTING'.ljust(width)}  {a.ljust(value_width)}  {b}"]
        mark = "" if row.differs else "  (same)"
        lines.append(f"  {row.setting.ljust(width)}  {_show(row.a).ljust(value_width)}  {_show(row.b)}{mark}")
    return lines


def format_json(comparison: Comparison, show_all: bool = False) -> str:
    rows = comparison.rows if show_all else comparison.differences
    return json.dumps({
        "stacks": [comparison.stack_a, comparison.stack_b],
        "settings_compared": len(comparison.rows),
        "differences": len(comparison.differences),
        "invalid_objects": comparison.invalid,
        "rows": [{"part": r.part, "setting": r.setting, comparison.stack_a: r.a,
                  **({comparison.stack_b: r.b} if comparison.stack_b != comparison.stack_a else {}),
                  "differs": r.differs} for r in rows],
    }, indent=2, default=str)


def parts(rows: Iterable[Row]) -> list[str]:
    return list(dict.fromkeys(r.part for r in rows))
