#!/usr/bin/env python3
"""Checks the rendered Kubernetes manifests (deploy/k8s): the schemas of built-in kinds
(kubernetes-validate, offline) and AgentConnect's own rules for production. Called by
scripts/validate-k8s.sh with one rendered YAML file per variant:

    validate_k8s.py REPO_ROOT NAME=FILE [NAME=FILE ...]
    validate_k8s.py --self-test REPO_ROOT FILE    (FILE: the render with every component)

The variant named "base" is the bare base (no image, Secret or settings): the rules that need those
are skipped for it. Prints a table, then every problem; exits 1 when there is one. The self-test
breaks the render in each way the rules guard against and fails unless every break is caught.
"""

import copy
import re
import sys
from pathlib import Path

import yaml

try:
    import kubernetes_validate
except ImportError:  # the shell wrapper installs it; without it only our own rules run
    kubernetes_validate = None

# Kubernetes versions the built-in kinds are validated against (oldest supported upstream, newest).
SCHEMA_VERSIONS = ["1.30.0", "1.33.0"]
OUR_IMAGE_COMMANDS = {"messaging-ingress", "voice-relay", "outbound", "agent-worker"}
UID = 10001
# Routes Twilio must reach; nothing else is published (never /metrics or /health).
ALLOWED_ROUTES = {
    ("/webhook", "Exact"): "messaging-ingress",
    ("/ci-webhook", "Exact"): "messaging-ingress",
    ("/message-status", "Exact"): "messaging-ingress",
    ("/twiml", "Exact"): "voice-relay",
    ("/ws", "Exact"): "voice-relay",
    ("/conversation-relay-callback", "Exact"): "voice-relay",
    ("/twilio/call-events/", "Prefix"): "voice-relay",
}
PRIVATE_PATHS = ["/metrics", "/health/live", "/health/ready", "/", "/v1/conversations"]
SECRET_KEYS_REQUIRED = ["TWILIO_AUTH_TOKEN", "OUTBOUND_API_TOKEN", "REDIS_URL", "DATABASE_URL"]
SECRET_LIKE = re.compile(r"(TOKEN|SECRET|PASSWORD|API_KEY|REDIS_URL|DATABASE_URL)")
# PostgreSQL's default max_connections: the pools at the autoscalers' maximum must fit in it.
POSTGRES_CONNECTIONS = 100
POSTGRES_RESERVED = 3
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "PodMonitor", "ServiceMonitor"}


class Report:
    def __init__(self, variant):
        self.variant = variant
        self.problems = []
        self.checks = 0

    def check(self, ok, message):
        self.checks += 1
        if not ok:
            self.problems.append(message)
        return ok


def load(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def name(o):
    return o["metadata"]["name"]


def find(objects, kind, object_name):
    for o in objects:
        if o.get("kind") == kind and name(o) == object_name:
            return o
    return None


def matches(selector, labels):
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist) against a label map."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def prestop_seconds(container):
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return int(pre["sleep"].get("seconds", 0))
    command = (pre.get("exec") or {}).get("command") or []
    if len(command) == 2 and command[0] in ("sleep", "/bin/sleep") and command[1].isdigit():
        return int(command[1])
    return None


def env_value(container, key, configmaps):
    """The effective value of an env var: explicit env wins over envFrom ConfigMaps."""
    for e in container.get("env") or []:
        if e["name"] == key and "value" in e:
            return e["value"]
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            cm = configmaps.get(ref["name"])
            if cm and key in (cm.get("data") or {}):
                return cm["data"][key]
    return None


def schema_check(report, objects):
    if kubernetes_validate is None:
        report.problems.append("schema: kubernetes-validate is not installed")
        return "missing"
    crds = 0
    for o in objects:
        if o.get("kind") in CRD_KINDS:
            crds += 1
            continue
        for version in SCHEMA_VERSIONS:
            report.checks += 1
            try:
                kubernetes_validate.validate(o, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                report.problems.append(f"schema {version}: {o['kind']}/{name(o)} {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError:
                report.problems.append(f"schema {version}: no schema for {o.get('apiVersion')} {o['kind']} (unknown kind or API version)")
    return f"{len(objects) - crds} ok x{len(SCHEMA_VERSIONS)}" if not any(p.startswith("schema") for p in report.problems) else "FAIL"


def check_workloads(report, objects, full, root):
    configmaps = {name(c): c for c in by_kind(objects, "ConfigMap")}
    secrets = {name(s): s for s in by_kind(objects, "Secret")}
    deployments = by_kind(objects, "Deployment")
    ours = [d for d in deployments if d["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "agentconnect"]
    report.check({name(d) for d in ours} == OUR_IMAGE_COMMANDS, f"deployments: expected {sorted(OUR_IMAGE_COMMANDS)}, got {sorted(name(d) for d in ours)}")
    autoscaled = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind(objects, "HorizontalPodAutoscaler")}
    autoscaled |= {s["spec"]["scaleTargetRef"]["name"] for s in by_kind(objects, "ScaledObject")}
    images = set()
    for d in deployments:
        n = name(d)
        spec = d["spec"]["template"]["spec"]
        pod_labels = d["spec"]["template"]["metadata"].get("labels", {})
        is_ours = d in ours
        report.check("replicas" not in d["spec"] or n not in autoscaled, f"{n}: pins spec.replicas while an autoscaler owns it (every apply resets it)")
        if is_ours:
            report.check(n in autoscaled, f"{n}: no HorizontalPodAutoscaler or ScaledObject (and no replicas)")
        psc = spec.get("securityContext") or {}
        report.check(psc.get("runAsNonRoot") is True, f"{n}: pod securityContext.runAsNonRoot is not true")
        report.check((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{n}: seccompProfile is not RuntimeDefault")
        if is_ours:
            report.check(psc.get("runAsUser") == UID, f"{n}: runAsUser is not {UID} (the image's user)")
            report.check(spec.get("automountServiceAccountToken") is False, f"{n}: mounts a service account token it never uses")
        containers = spec.get("containers") or []
        for c in containers + (spec.get("initContainers") or []):
            where = f"{n}/{c['name']}"
            sc = c.get("securityContext") or {}
            caps = sc.get("capabilities") or {}
            report.check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem is not true")
            report.check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false")
            report.check(caps.get("drop") == ["ALL"], f"{where}: capabilities do not drop ALL")
            report.check(not caps.get("add"), f"{where}: adds capabilities {caps.get('add')} (none are needed)")
            res = c.get("resources") or {}
            report.check(bool(res.get("requests")) and bool(res.get("limits")), f"{where}: no resource requests and limits")
            if is_ours:
                images.add(c.get("image"))
        if not is_ours:
            continue
        main = containers[0]
        ports = {p.get("name"): p["containerPort"] for p in main.get("ports") or []}
        report.check(ports.get("http") == 8080, f"{n}: no container port http=8080")
        report.check(env_value(main, "HTTP_PORT", configmaps) in (None, "8080") or not full, f"{n}: HTTP_PORT is not 8080")
        probe = lambda kind: ((main.get(kind) or {}).get("httpGet") or {}).get("path")
        report.check(probe("readinessProbe") == "/health/ready", f"{n}: readinessProbe is not GET /health/ready")
        report.check(probe("livenessProbe") == "/health/live", f"{n}: livenessProbe is not GET /health/live")
        pre = prestop_seconds(main)
        report.check(pre is not None and pre > 0, f"{n}: no preStop sleep (endpoints are removed after SIGTERM, requests hit a stopping pod)")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        report.check(pre is None or grace >= pre + 10, f"{n}: terminationGracePeriodSeconds {grace} leaves under 10 s after the preStop sleep ({pre} s)")
        annotations = d["spec"]["template"]["metadata"].get("annotations") or {}
        report.check(
            annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == "8080" and annotations.get("prometheus.io/path") == "/metrics",
            f"{n}: no prometheus.io scrape annotations for /metrics on 8080")
        report.check(main.get("command") == [n], f"{n}: command is {main.get('command')}, expected [{n}]")
        report.check(pod_labels.get("agentconnect.io/redis") == "true", f"{n}: pods lack agentconnect.io/redis (the Redis egress policy would block them)")
        if pod_labels.get("agentconnect.io/postgres") == "true":
            inits = [i for i in spec.get("initContainers") or [] if i.get("command") == ["migrate"]]
            report.check(len(inits) == 1, f"{n}: uses PostgreSQL but has no migrate initContainer")
        for source in main.get("envFrom") or []:
            if "configMapRef" in source:
                report.check(source["configMapRef"]["name"] in configmaps, f"{n}: envFrom ConfigMap {source['configMapRef']['name']} is not rendered")
            if "secretRef" in source and full:
                report.check(source["secretRef"]["name"] in secrets, f"{n}: envFrom Secret {source['secretRef']['name']} is not rendered")
        if n == "voice-relay":
            raw = env_value(main, "VOICE_DRAIN_SECONDS", configmaps)
            drain = int(raw) if raw and raw.isdigit() else 30
            report.check(600 <= drain <= 3600, f"voice-relay: VOICE_DRAIN_SECONDS={drain}: calls last minutes (600..3600)")
            report.check(grace >= (pre or 0) + drain + 30, f"voice-relay: terminationGracePeriodSeconds {grace} < preStop {pre} + VOICE_DRAIN_SECONDS {drain} + 30 (live calls are killed)")
            strategy = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
            report.check(str(strategy.get("maxUnavailable", "25%")) in ("0", "0%"), "voice-relay: rollingUpdate.maxUnavailable is not 0")
    report.check(not by_kind(objects, "Job"), "a Job is rendered: a fixed-name migrate Job fails on the next apply (migrations run as initContainers)")
    if full:
        report.check(len(images) == 1, f"our containers use different images: {sorted(images)}")
        for image in images:
            tag = image.rsplit("/", 1)[-1]
            report.check(":" in tag or "@sha256:" in image, f"image {image} has no tag (set it with `kustomize edit set image`)")
            report.check(not tag.endswith(":latest"), f"image {image}: :latest is not reproducible")
    # Services, PDBs and HPAs reference what exists.
    for s in by_kind(objects, "Service"):
        targets = [d for d in deployments if matches({"matchLabels": s["spec"].get("selector") or {}}, d["spec"]["template"]["metadata"].get("labels", {}))]
        report.check(len(targets) == 1, f"Service {name(s)} selects {len(targets)} Deployments")
        for port in s["spec"].get("ports") or []:
            if targets and isinstance(port.get("targetPort"), str):
                names = {p.get("name") for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports") or []}
                report.check(port["targetPort"] in names, f"Service {name(s)}: targetPort {port['targetPort']} is not a container port")
    for d in ours:
        labels = d["spec"]["template"]["metadata"]["labels"]
        pdbs = [p for p in by_kind(objects, "PodDisruptionBudget") if matches(p["spec"].get("selector"), labels)]
        report.check(len(pdbs) == 1, f"{name(d)}: {len(pdbs)} PodDisruptionBudgets (want 1)")
        for p in pdbs:
            report.check("maxUnavailable" in p["spec"] or p["spec"].get("minAvailable") in (None, 0), f"PDB {name(p)}: minAvailable can block node drains at the minimum replica count; use maxUnavailable")
    partitions = None
    cm = configmaps.get(next(iter(configmaps), ""), {}) if configmaps else {}
    if cm:
        partitions = int((cm.get("data") or {}).get("TAC_INBOUND_PARTITIONS", "16"))
    for h in by_kind(objects, "HorizontalPodAutoscaler"):
        target = find(objects, "Deployment", h["spec"]["scaleTargetRef"]["name"])
        report.check(target is not None, f"HPA {name(h)}: target Deployment missing")
        report.check(h["spec"].get("minReplicas", 1) >= 2, f"HPA {name(h)}: minReplicas < 2 (one pod is a single point of failure)")
        if name(h) == "agent-worker" and partitions:
            report.check(h["spec"]["maxReplicas"] <= partitions, f"HPA agent-worker: maxReplicas {h['spec']['maxReplicas']} > TAC_INBOUND_PARTITIONS {partitions}")
        if name(h) == "voice-relay":
            down = (h["spec"].get("behavior") or {}).get("scaleDown") or {}
            report.check(down.get("stabilizationWindowSeconds", 300) >= 600, "HPA voice-relay: scaleDown stabilizationWindowSeconds < 600")
            policies = down.get("policies") or []
            slow = policies and all((p["type"] == "Pods" and p["value"] <= 1 or p["type"] == "Percent" and p["value"] <= 10) and p["periodSeconds"] >= 300 for p in policies)
            report.check(bool(slow), "HPA voice-relay: scaleDown policies must remove at most 1 pod (or 10%) per 300 s or more")
    targets = [h["spec"]["scaleTargetRef"]["name"] for h in by_kind(objects, "HorizontalPodAutoscaler")] + [s["spec"]["scaleTargetRef"]["name"] for s in by_kind(objects, "ScaledObject")]
    report.check(len(targets) == len(set(targets)), f"two autoscalers target one Deployment: {sorted(targets)}")
    # ConfigMap and Secret content.
    if full:
        report.check(len(configmaps) == 1 and len(secrets) == 1, f"want one ConfigMap and one Secret, got {sorted(configmaps)} / {sorted(secrets)}")
        for s in secrets.values():
            keys = set((s.get("data") or {}).keys()) | set((s.get("stringData") or {}).keys())
            for key in SECRET_KEYS_REQUIRED:
                report.check(key in keys, f"Secret {name(s)}: no {key}")
        for c in configmaps.values():
            for key in (c.get("data") or {}):
                report.check(not SECRET_LIKE.search(key), f"ConfigMap {name(c)}: {key} belongs in the Secret (secrets.env)")
            report.check(bool((c.get("data") or {}).get("TWILIO_VOICE_PUBLIC_DOMAIN")), f"ConfigMap {name(c)}: TWILIO_VOICE_PUBLIC_DOMAIN is not set")
            webhook = (c.get("data") or {}).get("TWILIO_WEBHOOK_PUBLIC_DOMAIN")
            report.check(webhook in (None, "", (c.get("data") or {}).get("TWILIO_VOICE_PUBLIC_DOMAIN")),
                         f"ConfigMap {name(c)}: TWILIO_WEBHOOK_PUBLIC_DOMAIN {webhook} is not the Ingress's host (TWILIO_VOICE_PUBLIC_DOMAIN)")
    # Every variable set is one the services read (a typo would be silently ignored).
    read = variables_read(root)
    if read:
        for holder in list(configmaps.values()) + list(secrets.values()):
            for key in (holder.get("data") or {}):
                report.check(key in read or key.startswith(("KEDA_", "CONVERSATION_RELAY_")), f"{holder['kind']} {name(holder)}: {key} is read by no service")
    # PostgreSQL connections at the autoscalers' maximum, during a rollout (surge pods, their migrate
    # initContainers) and with the server's reserved slots.
    if full and configmaps:
        pool = int((next(iter(configmaps.values())).get("data") or {}).get("DATABASE_POOL_SIZE", "10"))
        users = [d for d in ours if d["spec"]["template"]["metadata"]["labels"].get("agentconnect.io/postgres") == "true"]
        pods = surge = 0
        for d in users:
            caps = [h["spec"]["maxReplicas"] for h in by_kind(objects, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name(d)]
            caps += [s["spec"].get("maxReplicaCount", 100) for s in by_kind(objects, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name(d)]
            extra = ((d["spec"].get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", 1)
            extra = extra if isinstance(extra, int) else max(caps or [1])  # a percentage: assume the worst
            pods += max(caps or [1]) + extra
            surge += extra
        total = pods * pool + surge + POSTGRES_RESERVED
        report.check(total <= POSTGRES_CONNECTIONS,
                     f"PostgreSQL: {pods} pods x DATABASE_POOL_SIZE {pool} + {surge} migrate + {POSTGRES_RESERVED} reserved = {total} connections"
                     f" > max_connections {POSTGRES_CONNECTIONS} (lower the pool or maxReplicas, or use PgBouncer)")
    return configmaps, secrets, partitions


def variables_read(root):
    """Environment variable names the services read (string literals in Shared/ and Services/)."""
    names = set()
    for folder in ("Shared", "Services"):
        for path in (Path(root) / folder).rglob("*.swift"):
            names |= set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', path.read_text()))
    return names


def path_matches(path, path_type, request):
    if path_type == "Exact":
        return request == path
    prefix = path.rstrip("/")
    return request == prefix or request.startswith(prefix + "/") or prefix == ""


def check_ingress(report, objects, configmaps, full):
    services = {name(s): s for s in by_kind(objects, "Service")}
    ingresses = by_kind(objects, "Ingress")
    report.check(len(ingresses) >= 1, "no Ingress")
    seen = set()
    domain = None
    if full and configmaps:
        domain = (next(iter(configmaps.values())).get("data") or {}).get("TWILIO_VOICE_PUBLIC_DOMAIN")
    for ing in ingresses:
        spec = ing["spec"]
        report.check("defaultBackend" not in spec, f"Ingress {name(ing)}: a defaultBackend publishes every route")
        if domain:
            hosts = [r.get("host") for r in spec.get("rules") or []] + [h for t in spec.get("tls") or [] for h in t.get("hosts") or []]
            report.check(all(h == domain for h in hosts), f"Ingress {name(ing)}: hosts {hosts} are not TWILIO_VOICE_PUBLIC_DOMAIN={domain}")
        report.check(bool(spec.get("tls")), f"Ingress {name(ing)}: no TLS (Twilio signs https URLs)")
        for rule in spec.get("rules") or []:
            report.check(bool(rule.get("host")), f"Ingress {name(ing)}: a rule without host")
            for p in (rule.get("http") or {}).get("paths") or []:
                key = (p.get("path"), p.get("pathType"))
                backend = p["backend"]["service"]["name"]
                report.check(ALLOWED_ROUTES.get(key) == backend, f"Ingress {name(ing)}: route {key} -> {backend} is not one of Twilio's")
                for private in PRIVATE_PATHS:
                    report.check(not path_matches(p.get("path", ""), p.get("pathType"), private), f"Ingress {name(ing)}: {key} publishes {private}")
                svc = services.get(backend)
                report.check(svc is not None, f"Ingress {name(ing)}: backend Service {backend} missing")
                port = p["backend"]["service"]["port"]
                if svc and "name" in port:
                    report.check(port["name"] in {sp.get("name") for sp in svc["spec"]["ports"]}, f"Ingress {name(ing)}: Service {backend} has no port {port['name']}")
                seen.add(key)
                if key[0] == "/ws":
                    timeout = int((ing["metadata"].get("annotations") or {}).get("nginx.ingress.kubernetes.io/proxy-read-timeout", "60"))
                    report.check(timeout >= 3600, f"Ingress {name(ing)}: /ws proxy-read-timeout {timeout}s cuts calls (want >= 3600)")
    report.check(seen == set(ALLOWED_ROUTES), f"Ingress routes missing: {sorted(set(ALLOWED_ROUTES) - seen)}")


def check_network(report, objects):
    policies = by_kind(objects, "NetworkPolicy")
    deny = [p for p in policies if p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    report.check(len(deny) == 1, "NetworkPolicy: no default deny (Ingress and Egress) for the namespace")
    dns = [p for p in policies if p["spec"].get("podSelector") == {} and any(
        any(port.get("port") == 53 for port in rule.get("ports") or []) for rule in p["spec"].get("egress") or [])]
    report.check(len(dns) >= 1, "NetworkPolicy: no DNS egress (every lookup would fail)")
    pods = {name(d): d["spec"]["template"]["metadata"].get("labels", {}) for d in by_kind(objects, "Deployment")}
    public = {"messaging-ingress", "voice-relay"}
    for p in policies:
        for rule in p["spec"].get("ingress") or []:
            sources = rule.get("from")
            report.check(bool(sources), f"NetworkPolicy {name(p)}: an ingress rule open to every source")
            for s in sources or []:
                block = s.get("ipBlock")
                report.check(not block, f"NetworkPolicy {name(p)}: ingress from an address range ({block}); name the controller instead")
        # The ingress controller may reach only the public services.
        for rule in p["spec"].get("ingress") or []:
            from_controller = any((s.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "ingress-nginx" for s in rule.get("from") or [])
            if from_controller:
                selected = {n for n, labels in pods.items() if matches(p["spec"]["podSelector"], labels)}
                report.check(selected == public, f"NetworkPolicy {name(p)}: the ingress controller reaches {sorted(selected)}, want {sorted(public)}")
    for service, port in (("redis", 6379), ("postgres", 5432)):
        egress = [p for p in policies if p["metadata"]["name"] == f"egress-{service}"]
        report.check(len(egress) == 1, f"NetworkPolicy egress-{service} missing")
        users = {n for n, labels in pods.items() if labels.get(f"agentconnect.io/{service}") == "true"}
        for p in egress:
            selected = {n for n, labels in pods.items() if matches(p["spec"]["podSelector"], labels)}
            report.check(selected == users and users, f"NetworkPolicy egress-{service} selects {sorted(selected)}, want {sorted(users)}")
            for rule in p["spec"].get("egress") or []:
                report.check(bool(rule.get("ports")), f"NetworkPolicy egress-{service}: a rule without ports")
    want_redis = OUR_IMAGE_COMMANDS
    got_redis = {n for n, labels in pods.items() if labels.get("agentconnect.io/redis") == "true"}
    report.check(got_redis == want_redis, f"pods allowed to Redis: {sorted(got_redis)}, want {sorted(want_redis)}")
    got_pg = {n for n, labels in pods.items() if labels.get("agentconnect.io/postgres") == "true"}
    report.check(got_pg == {"outbound", "agent-worker"}, f"pods allowed to PostgreSQL: {sorted(got_pg)}, want agent-worker and outbound")
    prom = [p for p in policies if any(any((s.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "prometheus" for s in r.get("from") or []) for r in p["spec"].get("ingress") or [])]
    report.check(len(prom) == 1, "NetworkPolicy: Prometheus cannot reach /metrics")


def source_group(root, relative, pattern):
    path = Path(root) / relative
    if not path.exists():
        return None
    found = re.search(pattern, path.read_text())
    return found.group(1) if found else None


def check_keda(report, objects, secrets, partitions, root):
    scaled = by_kind(objects, "ScaledObject")
    if not scaled:
        return
    env_keys = set()
    for s in secrets.values():
        env_keys |= set((s.get("data") or {}).keys())
    for c in by_kind(objects, "ConfigMap"):
        env_keys |= set((c.get("data") or {}).keys())
    auths = {name(a): a for a in by_kind(objects, "TriggerAuthentication")}
    for a in auths.values():
        for ref in a["spec"].get("secretTargetRef") or []:
            secret = secrets.get(ref["name"])
            report.check(secret is not None, f"TriggerAuthentication {name(a)}: Secret {ref['name']} is not rendered (generated name not rewritten?)")
            if secret:
                report.check(ref["key"] in (secret.get("data") or {}), f"TriggerAuthentication {name(a)}: Secret has no key {ref['key']} (add it to secrets.env)")
    agents_group = source_group(root, "Shared/AgentConnect/TAC.swift", r'StreamLagReporter\(bus: [^,]+, group: "([^"]+)"') or "agents"
    outbound_group = source_group(root, "Services/Outbound/Outbound.swift", r'group: "([^"]+)", consumer') or "outbound"
    expected = {
        "agent-worker": ({f"tac:inbound:{i}" for i in range(partitions or 16)}, agents_group),
        "outbound": ({"tac:outbound"}, outbound_group),
    }
    for so in scaled:
        n = name(so)
        spec = so["spec"]
        target = spec["scaleTargetRef"]["name"]
        report.check(find(objects, "Deployment", target) is not None, f"ScaledObject {n}: Deployment {target} missing")
        report.check(spec.get("minReplicaCount", 0) >= 2, f"ScaledObject {n}: minReplicaCount < 2")
        triggers = spec.get("triggers") or []
        names = [t.get("name") for t in triggers]
        report.check(len(set(names)) == len(names), f"ScaledObject {n}: trigger names are not unique")
        streams = set()
        for t in triggers:
            meta = t.get("metadata") or {}
            report.check(t.get("type") == "redis-streams", f"ScaledObject {n}: trigger {t.get('name')} is {t.get('type')}, not redis-streams")
            report.check("lagCount" in meta and "pendingEntriesCount" not in meta and "streamLength" not in meta,
                         f"ScaledObject {n}: trigger {t.get('name')} must scale on lagCount (unread backlog), not pending entries or length")
            report.check(meta.get("consumerGroup") == expected.get(target, (None, None))[1], f"ScaledObject {n}: consumerGroup {meta.get('consumerGroup')} is not the service's group {expected.get(target, (None, None))[1]}")
            address = meta.get("addressFromEnv")
            report.check(bool(meta.get("address")) or (address in env_keys), f"ScaledObject {n}: Redis address variable {address} is not in the Secret or ConfigMap")
            auth = (t.get("authenticationRef") or {}).get("name")
            report.check(auth is None or auth in auths, f"ScaledObject {n}: TriggerAuthentication {auth} missing")
            streams.add(meta.get("stream"))
        if target in expected:
            report.check(streams == expected[target][0], f"ScaledObject {n}: streams {sorted(streams)} are not {sorted(expected[target][0])}")
        if target == "agent-worker":
            report.check(spec.get("maxReplicaCount", 100) <= (partitions or 16), f"ScaledObject {n}: maxReplicaCount > TAC_INBOUND_PARTITIONS")
        modifiers = (spec.get("advanced") or {}).get("scalingModifiers")
        if modifiers:
            used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", modifiers.get("formula", "")))
            report.check(used == set(names), f"ScaledObject {n}: formula uses {sorted(used)}, triggers are {sorted(names)}")
            report.check(bool(modifiers.get("target")), f"ScaledObject {n}: scalingModifiers without target")


def check_monitors(report, objects):
    for pm in by_kind(objects, "PodMonitor"):
        pods = [d for d in by_kind(objects, "Deployment") if matches(pm["spec"].get("selector"), d["spec"]["template"]["metadata"].get("labels", {}))]
        report.check({name(d) for d in pods} == OUR_IMAGE_COMMANDS, f"PodMonitor {name(pm)} selects {sorted(name(d) for d in pods)}")
        for e in pm["spec"].get("podMetricsEndpoints") or []:
            report.check(e.get("path") == "/metrics" and e.get("port") == "http", f"PodMonitor {name(pm)}: endpoint is not port http, /metrics")


def check_namespace(report, objects):
    namespaces = by_kind(objects, "Namespace")
    report.check(len(namespaces) == 1, "want exactly one Namespace")
    if namespaces:
        ns = name(namespaces[0])
        labels = namespaces[0]["metadata"].get("labels") or {}
        report.check(labels.get("pod-security.kubernetes.io/enforce") == "restricted", f"Namespace {ns}: Pod Security 'restricted' is not enforced")
        for o in objects:
            if o["kind"] != "Namespace":
                report.check(o["metadata"].get("namespace") == ns, f"{o['kind']}/{name(o)} is not in namespace {ns}")


def run_checks(variant, objects, root, schema=True):
    full = variant != "base"
    report = Report(variant)
    result = schema_check(report, objects) if schema else "skipped"
    configmaps, secrets, partitions = check_workloads(report, objects, full, root)
    check_ingress(report, objects, configmaps, full)
    check_network(report, objects)
    check_keda(report, objects, secrets, partitions, root)
    check_monitors(report, objects)
    check_namespace(report, objects)
    return report, result


def container(objects, deployment, index=0):
    return find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][index]


def set_drain(objects, seconds):
    for e in container(objects, "voice-relay")["env"]:
        if e["name"] == "VOICE_DRAIN_SECONDS":
            e["value"] = str(seconds)


def add_route(objects, path, path_type, service):
    ing = find(objects, "Ingress", "agentconnect-voice")
    ing["spec"]["rules"][0]["http"]["paths"].append(
        {"path": path, "pathType": path_type, "backend": {"service": {"name": service, "port": {"name": "http"}}}})


def add_cpu_hpa(objects, deployment):
    hpa = copy.deepcopy(find(objects, "HorizontalPodAutoscaler", "voice-relay"))
    hpa["metadata"]["name"] = deployment + "-cpu"
    hpa["spec"]["scaleTargetRef"]["name"] = deployment
    objects.append(hpa)


def keda_trigger(objects, index=0):
    return find(objects, "ScaledObject", "agent-worker")["spec"]["triggers"][index]


# Each break, and a phrase the problem it causes must contain.
MUTATIONS = [
    ("replicas on an autoscaled Deployment", lambda o: find(o, "Deployment", "agent-worker")["spec"].__setitem__("replicas", 2), "pins spec.replicas"),
    ("a catch-all / route", lambda o: add_route(o, "/", "Prefix", "voice-relay"), "publishes /metrics"),
    ("/metrics routed", lambda o: add_route(o, "/metrics", "Exact", "voice-relay"), "is not one of Twilio's"),
    ("/health prefix routed", lambda o: add_route(o, "/health", "Prefix", "messaging-ingress"), "publishes /health/live"),
    ("a route missing", lambda o: find(o, "Ingress", "agentconnect-voice")["spec"]["rules"][0]["http"]["paths"].pop(), "routes missing"),
    ("/ws with the default proxy timeout", lambda o: find(o, "Ingress", "agentconnect-voice")["metadata"]["annotations"].pop("nginx.ingress.kubernetes.io/proxy-read-timeout"), "cuts calls"),
    ("Ingress host not the public domain", lambda o: find(o, "Ingress", "agentconnect-voice")["spec"]["rules"][0].__setitem__("host", "other.example.com"), "not TWILIO_VOICE_PUBLIC_DOMAIN"),
    ("no preStop", lambda o: container(o, "outbound").pop("lifecycle"), "no preStop"),
    ("no readiness probe", lambda o: container(o, "messaging-ingress").pop("readinessProbe"), "readinessProbe"),
    ("liveness on /health/ready", lambda o: container(o, "voice-relay")["livenessProbe"]["httpGet"].__setitem__("path", "/health/ready"), "livenessProbe"),
    ("voice drain longer than the grace period", lambda o: find(o, "Deployment", "voice-relay")["spec"]["template"]["spec"].__setitem__("terminationGracePeriodSeconds", 45), "live calls are killed"),
    ("voice drain of 30 s", lambda o: set_drain(o, 30), "calls last minutes"),
    ("fast voice-relay scale-down", lambda o: find(o, "HorizontalPodAutoscaler", "voice-relay")["spec"]["behavior"].pop("scaleDown"), "scaleDown"),
    ("NET_ADMIN added", lambda o: container(o, "agent-worker")["securityContext"]["capabilities"].__setitem__("add", ["NET_ADMIN"]), "adds capabilities"),
    ("writable root filesystem", lambda o: container(o, "outbound")["securityContext"].__setitem__("readOnlyRootFilesystem", False), "readOnlyRootFilesystem"),
    ("runs as root", lambda o: find(o, "Deployment", "voice-relay")["spec"]["template"]["spec"]["securityContext"].__setitem__("runAsUser", 0), "runAsUser"),
    ("no resources", lambda o: container(o, "agent-worker").pop("resources"), "resource requests"),
    ("no migrate initContainer", lambda o: find(o, "Deployment", "outbound")["spec"]["template"]["spec"].pop("initContainers"), "migrate initContainer"),
    ("a fixed-name migrate Job", lambda o: o.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "agentconnect"},
        "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "m", "image": "x:1", "command": ["migrate"]}]}}}}), "a Job is rendered"),
    ("image :latest", lambda o: [c.__setitem__("image", "registry.example.com/agentconnect:latest") for d in by_kind(o, "Deployment") if d["metadata"]["name"] in OUR_IMAGE_COMMANDS
        for c in d["spec"]["template"]["spec"]["containers"] + d["spec"]["template"]["spec"].get("initContainers", [])], ":latest"),
    ("no default-deny NetworkPolicy", lambda o: o.remove(find(o, "NetworkPolicy", "default-deny")), "default deny"),
    ("ingress controller reaches outbound", lambda o: find(o, "NetworkPolicy", "ingress-from-ingress-controller")["spec"]["podSelector"]["matchExpressions"][0]["values"].append("outbound"), "ingress controller reaches"),
    ("a pod without Redis egress", lambda o: find(o, "Deployment", "voice-relay")["spec"]["template"]["metadata"]["labels"].pop("agentconnect.io/redis"), "agentconnect.io/redis"),
    ("ingress open to everyone", lambda o: find(o, "NetworkPolicy", "outbound-api")["spec"]["ingress"][0].pop("from"), "open to every source"),
    ("no Prometheus annotations", lambda o: find(o, "Deployment", "outbound")["spec"]["template"]["metadata"].pop("annotations"), "prometheus.io"),
    ("KEDA on pending entries", lambda o: keda_trigger(o)["metadata"].__setitem__("pendingEntriesCount", keda_trigger(o)["metadata"].pop("lagCount")), "lagCount"),
    ("KEDA misses a partition", lambda o: find(o, "ScaledObject", "agent-worker")["spec"]["triggers"].pop(), "streams"),
    ("KEDA on a wrong group", lambda o: keda_trigger(o)["metadata"].__setitem__("consumerGroup", "workers"), "consumerGroup"),
    ("KEDA and an HPA on one Deployment", lambda o: add_cpu_hpa(o, "agent-worker"), "two autoscalers"),
    ("TriggerAuthentication on a missing Secret key", lambda o: find(o, "TriggerAuthentication", "agentconnect-redis")["spec"]["secretTargetRef"][0].__setitem__("key", "NOPE"), "has no key"),
    ("a secret in the ConfigMap", lambda o: by_kind(o, "ConfigMap")[0]["data"].__setitem__("TWILIO_AUTH_TOKEN", "x"), "belongs in the Secret"),
    ("a variable no service reads", lambda o: by_kind(o, "ConfigMap")[0]["data"].__setitem__("VOICE_DRAIN_SECOND", "3600"), "read by no service"),
    ("PostgreSQL pools over max_connections", lambda o: by_kind(o, "ConfigMap")[0]["data"].__setitem__("DATABASE_POOL_SIZE", "16"), "connections >"),
    ("minAvailable PDB", lambda o: find(o, "PodDisruptionBudget", "voice-relay")["spec"].__setitem__("minAvailable", 2) or find(o, "PodDisruptionBudget", "voice-relay")["spec"].pop("maxUnavailable"), "minAvailable"),
    ("a misspelt field (schema)", lambda o: container(o, "outbound").__setitem__("readinesProbe", {}), "schema"),
]


def self_test(root, path):
    original = load(path)
    report, _ = run_checks("all", copy.deepcopy(original), root, schema=False)
    if report.problems:
        print("self-test: the unbroken render already has problems:", *report.problems, sep="\n  ")
        return 1
    missed = []
    for label, mutate, phrase in MUTATIONS:
        objects = copy.deepcopy(original)
        mutate(objects)
        report, _ = run_checks("all", objects, root, schema=phrase == "schema")
        if not any(phrase in p for p in report.problems):
            missed.append(f"{label}: not caught (problems: {report.problems[:3]})")
    print(f"self-test: {len(MUTATIONS) - len(missed)}/{len(MUTATIONS)} deliberate breaks caught")
    for m in missed:
        print("PROBLEM self-test " + m)
    return 1 if missed else 0


def main():
    if sys.argv[1] == "--self-test":
        return self_test(sys.argv[2], sys.argv[3])
    root = sys.argv[1]
    rows, failed = [], []
    for arg in sys.argv[2:]:
        variant, path = arg.split("=", 1)
        objects = load(path)
        report, schema = run_checks(variant, objects, root)
        kinds = {}
        for o in objects:
            kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
        crds = ",".join(sorted(k for k in kinds if k in CRD_KINDS)) or "-"
        rows.append((variant, str(len(objects)), schema, crds, str(report.checks), "ok" if not report.problems else f"{len(report.problems)} problem(s)"))
        failed += [f"{variant}: {p}" for p in report.problems]
    header = ("variant", "objects", "schema (built-in kinds)", "CRDs (structural)", "rules", "result")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    for p in failed:
        print("PROBLEM " + p)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
