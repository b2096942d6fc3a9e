"""Every rule of the pack: name, description, level, severity, remediation, config schema, check.

Levels here are the pack's defaults (mandatory for security, advisory for best
practice); `policies/config/<env>.json` raises or lowers them per environment.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, Severity

from . import aws, network, pods, secrets, workloads
from . import k8s
from .core import EXEMPT_PREFIX, Rule, annotations_of, tags_of

MANDATORY, ADVISORY = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY
LOW, MEDIUM, HIGH, CRITICAL = Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL

_STRINGS = {"type": "array", "items": {"type": "string"}}


def _pod(name: str, description: str, check, remediation: str, severity=HIGH, level=MANDATORY, **kw) -> Rule:
    return Rule(name, description, level, severity, remediation, "pods", check, **kw)


POD_RULES = [
    _pod(
        "pod-run-as-non-root",
        "Containers run as a non-root user (runAsNonRoot: true, never UID 0).",
        pods.run_as_non_root,
        "Set securityContext.runAsNonRoot: true and a runAsUser >= 10000 on the pod (kube.pod_security_context()).",
    ),
    _pod(
        "pod-no-privileged",
        "No container runs privileged.",
        pods.no_privileged,
        "Remove securityContext.privileged or set it to false; grant a single capability instead if one is needed.",
        severity=CRITICAL,
    ),
    _pod(
        "pod-no-privilege-escalation",
        "Every container sets allowPrivilegeEscalation: false.",
        pods.no_privilege_escalation,
        "Set securityContext.allowPrivilegeEscalation: false on every container (kube.container_security_context()).",
    ),
    _pod(
        "pod-read-only-root-filesystem",
        "Every container has a read-only root filesystem.",
        pods.read_only_root_filesystem,
        "Set readOnlyRootFilesystem: true and mount an emptyDir where the process writes (kube.tmp_volume() for /tmp).",
        severity=MEDIUM,
    ),
    _pod(
        "pod-drop-all-capabilities",
        "Every container drops ALL Linux capabilities and adds back only allowed ones.",
        pods.drop_all_capabilities,
        "Set securityContext.capabilities.drop: [ALL]; add back only NET_BIND_SERVICE when binding a port < 1024.",
        config={"allowedCapabilities": {**_STRINGS, "default": ["NET_BIND_SERVICE"]}},
    ),
    _pod(
        "pod-seccomp-runtime-default",
        "Every container runs with the RuntimeDefault (or a Localhost) seccomp profile.",
        pods.seccomp_runtime_default,
        "Set securityContext.seccompProfile.type: RuntimeDefault on the pod.",
        severity=MEDIUM,
    ),
    _pod(
        "pod-no-host-network",
        "Pods do not share the node's network namespace (hostNetwork).",
        pods.no_host_network,
        "Remove hostNetwork: true; expose the port through a Service. Node agents that need it take a named exemption.",
        severity=CRITICAL,
    ),
    _pod(
        "pod-no-host-pid",
        "Pods do not share the node's process namespace (hostPID).",
        pods.no_host_pid,
        "Remove hostPID: true. Node agents that need it take a named exemption.",
        severity=CRITICAL,
    ),
    _pod(
        "pod-no-host-ipc",
        "Pods do not share the node's IPC namespace (hostIPC).",
        pods.no_host_ipc,
        "Remove hostIPC: true.",
        severity=CRITICAL,
    ),
    _pod(
        "pod-no-host-path",
        "Pods mount no hostPath volumes.",
        pods.no_host_path,
        "Use a PersistentVolumeClaim, emptyDir, ConfigMap or Secret volume. Node agents that read host files take a named exemption.",
    ),
    _pod(
        "pod-no-host-port",
        "Containers bind no host ports.",
        pods.no_host_port,
        "Remove ports[].hostPort and expose the port through a Service.",
    ),
    _pod(
        "pod-no-service-account-token",
        "Pods do not automount a service-account token.",
        pods.no_service_account_token,
        "Set automountServiceAccountToken: false on the pod spec; a pod that calls the Kubernetes API takes a named exemption or mounts a projected token.",
        severity=MEDIUM,
    ),
    _pod(
        "no-default-namespace",
        "Namespaced objects name an explicit namespace other than default.",
        pods.no_default_namespace,
        "Set metadata.namespace to the environment's namespace (aquascene-<env>) or a component namespace.",
        severity=MEDIUM,
        config={"clusterScopedKinds": {**_STRINGS, "default": []}},
    ),
    _pod(
        "pod-resources",
        "Every container requests CPU and memory and limits memory.",
        pods.container_resources,
        "Give every container resources.requests.cpu, resources.requests.memory and resources.limits.memory (kube.preset()).",
        severity=MEDIUM,
    ),
    _pod(
        "pod-ephemeral-storage",
        "Every container requests and limits ephemeral-storage (a node under disk pressure evicts pods without first).",
        pods.container_ephemeral_storage,
        "Give every container resources.requests and resources.limits ephemeral-storage (kube.preset() carries both).",
        severity=MEDIUM,
        level=ADVISORY,
    ),
    _pod(
        "pod-probes",
        "Long-running containers have liveness and readiness probes, and the two differ.",
        pods.probes,
        "Add a livenessProbe (is the process alive?) and a different readinessProbe (can it serve now?), e.g. kube.HttpProbes.",
        severity=MEDIUM,
        level=ADVISORY,
    ),
    _pod(
        "image-tag-pinned",
        "Images name an explicit tag other than latest (or a digest).",
        pods.image_tag_pinned,
        "Reference images as registry/repository:<version> (or @sha256:<digest>), never :latest or untagged.",
    ),
    _pod(
        "image-digest-pinned",
        "Images are pinned by digest (@sha256:...).",
        pods.image_digest_pinned,
        "Deploy images by digest: set aquascene:image.digest, or image.build so the stack deploys the digest it pushed.",
        severity=MEDIUM,
        level=ADVISORY,
    ),
    _pod(
        "image-not-denied",
        "No deprecated, archived or frozen images (configurable deny list).",
        pods.image_not_denied,
        "Switch to the maintained image the deny-list reason names (upstream official or operator images).",
        config={
            "deniedImages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"pattern": {"type": "string", "minLength": 1}, "reason": {"type": "string"}},
                    "required": ["pattern", "reason"],
                },
                "default": pods.DEFAULT_DENIED_IMAGES,
            }
        },
    ),
]


def _workload(name: str, description: str, check, remediation: str, severity=MEDIUM, level=ADVISORY, scope="stack", **kw) -> Rule:
    return Rule(name, description, level, severity, remediation, "workloads", check, scope=scope, **kw)


WORKLOAD_RULES = [
    _workload(
        "workload-min-replicas",
        "Deployments and StatefulSets run at least the minimum number of replicas (HPA minReplicas when autoscaled).",
        workloads.min_replicas,
        "Raise replicas (or the HPA's minReplicas) to the configured minimum.",
        config={"minReplicas": {"type": "integer", "minimum": 1, "default": 2}},
    ),
    _workload(
        "workload-pdb",
        "Replicated Deployments and StatefulSets have a PodDisruptionBudget selecting their pods.",
        workloads.pdb_for_replicated,
        "Add a PodDisruptionBudget with maxUnavailable: 1 and the workload's selector.",
    ),
    _workload(
        "pdb-allows-disruption",
        "PodDisruptionBudgets allow at least one voluntary disruption, so nodes can drain.",
        workloads.pdb_allows_disruption,
        "Use maxUnavailable: 1 (or a minAvailable below the replica count).",
    ),
    _workload(
        "workload-spread",
        "Replicated Deployments and StatefulSets spread their pods (podAntiAffinity or topologySpreadConstraints).",
        workloads.spread,
        "Add soft podAntiAffinity on kubernetes.io/hostname and a zone topologySpreadConstraint (kube.spread_across_nodes_and_zones()).",
    ),
    _workload(
        "hpa-owns-replicas",
        "A Deployment or StatefulSet scaled by a HorizontalPodAutoscaler does not also set spec.replicas.",
        workloads.hpa_owns_replicas,
        "Drop spec.replicas from the workload; the HPA's minReplicas sets the floor.",
    ),
    _workload(
        "statefulset-headless-service",
        "Every StatefulSet names a headless Service (clusterIP: None) declared beside it.",
        workloads.statefulset_headless_service,
        "Declare a Service with clusterIP: None in the StatefulSet's namespace and set spec.serviceName to it.",
    ),
    _workload(
        "selector-matches-template",
        "Workload selectors are non-empty and match their pod template labels.",
        workloads.selector_matches_template,
        "Set spec.selector.matchLabels to the immutable identity labels (kube.Identity.selector()) also on the template.",
        level=MANDATORY,
        scope="resource",
    ),
    _workload(
        "no-bare-pods",
        "No bare Pods: every pod is managed by a controller.",
        workloads.no_bare_pods,
        "Run the pod from a Deployment, StatefulSet, DaemonSet or Job.",
        scope="resource",
    ),
]


def _net(name: str, description: str, check, remediation: str, severity=HIGH, level=MANDATORY, scope="resource", **kw) -> Rule:
    return Rule(name, description, level, severity, remediation, "network", check, scope=scope, **kw)


NETWORK_RULES = [
    _net(
        "pod-network-policy",
        "Every workload's pods are selected by a NetworkPolicy of their own (not only a namespace-wide one).",
        network.pod_network_policy,
        "Add a NetworkPolicy whose podSelector matches the pod labels and allows only what the workload serves and calls.",
        scope="stack",
    ),
    _net(
        "namespace-default-deny",
        "Every namespace the stack creates has a default-deny NetworkPolicy for ingress and egress.",
        network.namespace_default_deny,
        "Add a NetworkPolicy with podSelector: {}, policyTypes: [Ingress, Egress] and no rules in the namespace.",
        scope="stack",
    ),
    _net(
        "namespace-pod-security-restricted",
        "Namespaces enforce the restricted Pod Security Standard.",
        network.namespace_pod_security,
        "Label the namespace pod-security.kubernetes.io/enforce: restricted (kube.restricted_namespace_labels()); a node-agent namespace at baseline takes a named exemption.",
    ),
    _net(
        "service-type-restricted",
        "No Service of type LoadBalancer or NodePort except the gateway's.",
        network.service_type,
        "Use type ClusterIP and route traffic through the gateway (Gateway API HTTPRoute).",
        config={"allowedServices": {**_STRINGS, "description": "namespace/name globs", "default": ["aquascene-*-gateway/*"]}},
    ),
    _net(
        "route-tls",
        "Ingresses and Gateway routes serve TLS: Ingress spec.tls covers every host; Gateways have HTTPS listeners with certificates; routes on plain-HTTP listeners only redirect to https.",
        network.route_tls,
        "Add spec.tls (Ingress) or an HTTPS listener with tls.certificateRefs (Gateway); attach plain-HTTP routes only to redirect to https.",
        level=ADVISORY,
        scope="stack",
    ),
    _net(
        "no-nginx-snippets",
        "No nginx snippet annotations (raw nginx configuration injection).",
        network.no_nginx_snippets,
        "Remove the *-snippet annotation; express the behaviour with Gateway API filters or policies.",
    ),
]

SECRET_RULES = [
    Rule(
        "secrets-as-files",
        "Secrets reach containers as mounted files, never as environment variables (CKV_K8S_35).",
        MANDATORY,
        HIGH,
        "Mount the Secret read-only (defaultMode 0400) and point the program at the file: the engine's "
        "SECRETS_DIR, or the image's *_FILE / __FILE setting.",
        "secrets",
        secrets.secrets_as_files,
    ),
    Rule(
        "no-secret-env-literals",
        "No secret-looking values as literal container env values.",
        MANDATORY,
        CRITICAL,
        "Store the value in a Kubernetes Secret and mount it as a read-only file (AppService SecretEnv).",
        "secrets",
        secrets.no_secret_env_literals,
        config={"allowedNames": {**_STRINGS, "description": "env names (globs) never treated as secrets", "default": []}},
    ),
    Rule(
        "no-secrets-in-configmaps",
        "No secret-looking values in ConfigMaps.",
        MANDATORY,
        CRITICAL,
        "Move the value to a Secret; in configuration files reference it by file ($__file{...}, *_file) or environment variable.",
        "secrets",
        secrets.no_secrets_in_configmaps,
        config={"allowedNames": {**_STRINGS, "description": "keys (globs) never treated as secrets", "default": []}},
    ),
]


def _aws(name: str, description: str, check, remediation: str, severity=HIGH, level=MANDATORY, scope="resource", **kw) -> Rule:
    return Rule(name, description, level, severity, remediation, "aws", check, scope=scope, **kw)


AWS_RULES = [
    _aws(
        "s3-encryption",
        "Every S3 bucket has default server-side encryption (a BucketServerSideEncryptionConfiguration).",
        aws.s3_encryption,
        "Add aws.s3.BucketServerSideEncryptionConfiguration(bucket=bucket.id) with sse_algorithm aws:kms (or AES256).",
        scope="stack",
        config={"allowedAlgorithms": {**_STRINGS, "default": ["aws:kms", "aws:kms:dsse", "AES256"]}},
    ),
    _aws(
        "s3-versioning",
        "Every S3 bucket has versioning Enabled (a BucketVersioning).",
        aws.s3_versioning,
        "Add aws.s3.BucketVersioning(bucket=bucket.id, versioning_configuration={'status': 'Enabled'}).",
        severity=MEDIUM,
        scope="stack",
    ),
    _aws(
        "s3-public-access-block",
        "Every S3 bucket has a BucketPublicAccessBlock with all four flags set.",
        aws.s3_public_access_block,
        "Add aws.s3.BucketPublicAccessBlock with block_public_acls, block_public_policy, ignore_public_acls and restrict_public_buckets all true.",
        severity=CRITICAL,
        scope="stack",
    ),
    _aws(
        "s3-lifecycle",
        "Every S3 bucket has a lifecycle configuration with an Enabled rule (expiry of old versions, aborted uploads).",
        aws.s3_lifecycle,
        "Add aws.s3.BucketLifecycleConfiguration expiring noncurrent versions and aborting incomplete multipart uploads.",
        severity=LOW,
        level=ADVISORY,
        scope="stack",
    ),
    _aws(
        "rds-encrypted",
        "RDS instances and clusters encrypt their storage.",
        aws.rds_encrypted,
        "Set storage_encrypted=True (with a customer KMS key via kms_key_id where required).",
    ),
    _aws(
        "rds-multi-az",
        "RDS instances are Multi-AZ.",
        aws.rds_multi_az,
        "Set multi_az=True.",
        severity=MEDIUM,
        level=ADVISORY,
    ),
    _aws(
        "rds-backup-retention",
        "RDS instances and clusters keep automated backups for at least the minimum number of days.",
        aws.rds_backup_retention,
        "Set backup_retention_period to at least the configured minimum (35 at most).",
        severity=MEDIUM,
        config={"minDays": {"type": "integer", "minimum": 1, "maximum": 35, "default": 7}},
    ),
    _aws(
        "rds-not-public",
        "RDS instances are not publicly accessible.",
        aws.rds_not_public,
        "Set publicly_accessible=False and reach the database from inside the VPC.",
        severity=CRITICAL,
    ),
    _aws(
        "rds-deletion-protection",
        "RDS instances and clusters have deletion protection.",
        aws.rds_deletion_protection,
        "Set deletion_protection=True.",
        severity=MEDIUM,
        level=ADVISORY,
    ),
    _aws(
        "eks-private-endpoint",
        "EKS clusters have a private API endpoint and no public endpoint open to the internet.",
        aws.eks_private_endpoint,
        "Set vpc_config endpoint_private_access=True and endpoint_public_access=False (or restrict public_access_cidrs).",
    ),
    _aws(
        "eks-secrets-encryption",
        "EKS clusters envelope-encrypt Kubernetes Secrets with a KMS key.",
        aws.eks_secrets_encryption,
        "Set encryption_config={'provider': {'key_arn': key.arn}, 'resources': ['secrets']}.",
    ),
    _aws(
        "eks-control-plane-logging",
        "EKS clusters ship the required control-plane logs (api, audit, authenticator by default).",
        aws.eks_control_plane_logging,
        "Set enabled_cluster_log_types to include every required type.",
        severity=MEDIUM,
        config={"requiredLogTypes": {**_STRINGS, "default": ["api", "audit", "authenticator"]}},
    ),
    _aws(
        "sg-no-public-ingress",
        "No security-group ingress from 0.0.0.0/0 or ::/0, except a load balancer's public ports (80/443).",
        aws.sg_no_public_ingress,
        "Restrict the source to the VPC, a prefix list or another security group; only the load balancer's group opens tcp 80/443 to the internet.",
        severity=CRITICAL,
        scope="stack",
        config={
            "publicPorts": {"type": "array", "items": {"type": "integer"}, "default": [80, 443]},
            "loadBalancerGroups": {
                **_STRINGS,
                "description": "globs over the group's Pulumi name, name or Name tag",
                "default": ["*-lb", "*-lb-*", "*-alb", "*-alb-*", "*-nlb", "*-nlb-*", "*load-balancer*"],
            },
        },
    ),
    _aws(
        "iam-no-wildcard-actions",
        "IAM and resource policies allow no \"*\" or \"service:*\" actions (and no Allow with NotAction).",
        aws.iam_no_wildcard_actions,
        "List the specific actions the principal needs.",
        severity=CRITICAL,
    ),
    _aws(
        "kms-key-rotation",
        "Symmetric KMS keys rotate automatically.",
        aws.kms_key_rotation,
        "Set enable_key_rotation=True.",
        severity=MEDIUM,
    ),
]


# ---------------------------------------------------------------- exemptions


def exemptions_valid(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    """Exemption annotations and tags name a rule of this pack and record a reason."""
    known = {r.name for r in RULES if r.exemptible}
    is_k8s = args.resource_type.startswith("kubernetes:")
    where = annotations_of(args.props) if is_k8s else tags_of(args.props)
    what = "annotation" if is_k8s else "tag"
    ref = k8s.ref(args.resource_type, args.props, args.name) if is_k8s else aws._ref(args.resource_type, args.name)
    for key in sorted(where):
        if not str(key).startswith(EXEMPT_PREFIX):
            continue
        rule = str(key)[len(EXEMPT_PREFIX):]
        value = where.get(key)
        if rule not in known:
            yield f"{ref}: {what} {key} names no exemptible rule of this pack"
        elif not (isinstance(value, str) and value.strip()):
            yield f"{ref}: {what} {key} records no reason"


META_RULES = [
    Rule(
        "exemptions-valid",
        "Exemptions name a rule of this pack and record a reason.",
        MANDATORY,
        LOW,
        f"Write {EXEMPT_PREFIX}<rule-name>: \"<why this resource needs it>\" with an existing rule name.",
        "meta",
        exemptions_valid,
        exemptible=False,
    ),
]

RULES: list[Rule] = POD_RULES + WORKLOAD_RULES + NETWORK_RULES + SECRET_RULES + AWS_RULES + META_RULES
BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}
assert len(BY_NAME) == len(RULES), "rule names must be unique"
