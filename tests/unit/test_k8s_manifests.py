"""The Kubernetes manifests and monitoring files say what the code really does.

Each overlay is rendered with ``kubectl kustomize`` (no cluster needed) and checked against
the code, not against copies of its constants: the commands go through the real
``minitg`` argument parser, every container's environment is turned into a real
``Config`` (Secret files replaced by dummy files at the mounted paths), probe ports are
compared with the addresses that config makes the role listen on, and the gRPC probe
service names are imported from each service. Schema validation is
``scripts/validate_k8s.sh``'s job; PromQL syntax is ``scripts/check_alert_rules.sh``'s.
"""

from __future__ import annotations

import ast
import base64
import functools
import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Histogram
from prometheus_client.metrics import MetricWrapperBase

from auth_service.adapters.keys import load_signing_keys
from svckit import metrics
from svckit.cli import build_parser
from svckit.config import ROLES, TARGETS, Config

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")
SERVICE_ROLES = ("auth", "chat", "presence")
# Which callers each service admits (docs/ARCHITECTURE.md's flows); the gateway admits everyone.
ALLOWED_CALLERS = {
    "auth": {"gateway", "chat", "presence"},
    "chat": {"gateway", "presence"},
    "presence": {"gateway", "chat"},
}
# The keys of the minitg-secrets Secret (OPERATIONS.md) and a plausible value for each.
SECRET_SAMPLES = {
    "MINITG_DATABASE_URL_FILE": "postgresql://minitg:pw@postgres:5432/minitg",
    "MINITG_BROKER_URL_FILE": "amqp://minitg:pw@rabbitmq:5672/",
    "MINITG_REDIS_URL_FILE": "redis://redis:6379/0",
    "MINITG_INTERNAL_TOKEN_FILE": "a-shared-internal-token",
}
SECRET_KEYS = {"database-url", "broker-url", "redis-url", "internal-token"}
# Dev-only third-party containers whose images need a writable root (see rabbitmq.yaml).
WRITABLE_ROOT_ALLOWED = {"rabbitmq"}

Doc = dict[str, Any]


@functools.cache
def render(directory: str) -> tuple[Doc, ...]:
    """The documents ``kubectl kustomize <directory>`` prints."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is needed to render k8s/ (it bundles kustomize)"
    out = subprocess.run(
        [kubectl, "kustomize", str(REPO / directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[Doc, ...]:
    return render(f"k8s/overlays/{request.param}")


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def pod_templates(docs: tuple[Doc, ...]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod template) for every Deployment, StatefulSet and Job."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield doc, doc["spec"]["template"]


def is_minitg(template: Doc) -> bool:
    return bool(template["metadata"]["labels"].get("app.kubernetes.io/name") == "minitg")


def component(template: Doc) -> str:
    return str(template["metadata"]["labels"]["app.kubernetes.io/component"])


def minitg_deployments(docs: tuple[Doc, ...]) -> dict[str, Doc]:
    """role -> Deployment, for the Deployments running the minitg image."""
    return {
        component(d["spec"]["template"]): d
        for d in of_kind(docs, "Deployment")
        if is_minitg(d["spec"]["template"])
    }


def container_env(docs: tuple[Doc, ...], container: Doc) -> dict[str, Any]:
    """Every variable the container gets: envFrom ConfigMaps first, then ``env``."""
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in of_kind(docs, "ConfigMap")}
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in configmaps, f"envFrom names a ConfigMap that is not rendered: {name}"
        env.update(configmaps[name])
    for entry in container.get("env", []):
        env[entry["name"]] = entry["value"] if "value" in entry else entry["valueFrom"]
    return env


def secret_file_key(template: Doc, container: Doc, path: str) -> str:
    """The Secret key projected at ``path`` in this container (fails when none is)."""
    volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        prefix = mount["mountPath"].rstrip("/") + "/"
        if secret is None or not path.startswith(prefix):
            continue
        for item in secret.get("items", []):
            if item["path"] == path.removeprefix(prefix):
                return str(item["key"])
    raise AssertionError(f"{container['name']}: no Secret item is mounted at {path}")


def effective_config(
    docs: tuple[Doc, ...], template: Doc, container: Doc, tmp_path: Path
) -> Config:
    """The Config this container would build, Secret files replaced by samples."""
    environ: dict[str, str] = {}
    for name, value in container_env(docs, container).items():
        if isinstance(value, dict):  # valueFrom: the downward API gives the pod name
            assert value == {"fieldRef": {"fieldPath": "metadata.name"}}, (name, value)
            environ[name] = "gateway-7d9f8c6b5-x2x7q"
        elif name in SECRET_SAMPLES:
            key = secret_file_key(template, container, value)
            assert key in SECRET_KEYS, f"{name}: unknown Secret key {key}"
            sample = tmp_path / f"{container['name']}-{key}"
            sample.write_text(SECRET_SAMPLES[name] + "\n", encoding="utf-8")
            environ[name] = str(sample)
        else:
            environ[name] = str(value)
    return Config.from_environ(environ)


class _RecordingEnviron(Mapping[str, str]):
    """An empty environ that remembers every name the config asks it about."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@functools.cache
def config_env_names() -> frozenset[str]:
    """Every MINITG_* name svckit/config.py reads: its literals, plus what it asks for."""
    source = (REPO / "svckit" / "config.py").read_text(encoding="utf-8")
    literals = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"MINITG_[A-Z_]+", node.value)
    }
    recorder = _RecordingEnviron()
    Config.from_environ(recorder)  # asks for the f-string names and the *_FILE variants
    return frozenset(literals | {n for n in recorder.asked if n.startswith("MINITG_")})


def test_config_env_names_include_templated_and_file_variants() -> None:
    """The derived name set sees the f-string listen names and the Secret file variants."""
    names = config_env_names()
    assert {"MINITG_CHAT_LISTEN", "MINITG_DATABASE_URL_FILE", "MINITG_POD_ID"} <= names
    assert "MINITG_GATEWAY_LISTEN" not in names


def test_every_role_runs_its_own_target(overlay: tuple[Doc, ...]) -> None:
    """One Deployment per role, each running `minitg serve --target <that role>`."""
    deployments = minitg_deployments(overlay)
    assert set(ROLES) == set(deployments)
    for role, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        argv = [*container.get("command", []), *container.get("args", [])]
        assert "minitg" == argv[0], f"{role}: {argv}"
        args = build_parser().parse_args(argv[1:])
        assert ("serve", role) == (args.command, args.target)
        assert role in TARGETS


def test_migration_job_runs_migrate_up(overlay: tuple[Doc, ...]) -> None:
    """The one minitg Job is `minitg migrate up` on every service's schema."""
    jobs = [j for j in of_kind(overlay, "Job") if is_minitg(j["spec"]["template"])]
    assert 1 == len(jobs)
    (container,) = jobs[0]["spec"]["template"]["spec"]["containers"]
    argv = [*container.get("command", []), *container.get("args", [])]
    assert "minitg" == argv[0]
    args = build_parser().parse_args(argv[1:])
    assert ("migrate", "up", "all") == (args.command, args.direction, args.service)


def test_service_pods_wait_for_their_schema(overlay: tuple[Doc, ...], tmp_path: Path) -> None:
    """Each service Deployment's init container runs `minitg migrate check --wait --service
    <role>` on PostgreSQL, so a first deploy's pods start after the migrate Job's work."""
    deployments = minitg_deployments(overlay)
    for role in SERVICE_ROLES:
        template = deployments[role]["spec"]["template"]
        (init,) = template["spec"].get("initContainers", [])
        argv = [*init.get("command", []), *init.get("args", [])]
        assert "minitg" == argv[0], f"{role}: {argv}"
        args = build_parser().parse_args(argv[1:])
        assert ("migrate", "check", True, role) == (
            args.command,
            args.direction,
            args.wait,
            args.service,
        )
        (container,) = template["spec"]["containers"]
        assert container["image"] == init["image"], role
        cfg = effective_config(overlay, template, init, tmp_path)
        assert cfg.database_url.startswith("postgresql://"), f"{role}: would wait on SQLite"


def test_env_names_are_read_by_the_config(overlay: tuple[Doc, ...]) -> None:
    """Every variable a minitg container sets (ConfigMap or env) is one the config reads."""
    known = config_env_names()
    for _, template in pod_templates(overlay):
        if not is_minitg(template):
            continue
        for container in [
            *template["spec"].get("initContainers", []),
            *template["spec"]["containers"],
        ]:
            unknown = set(container_env(overlay, container)) - known
            assert set() == unknown, f"{component(template)}: not read by svckit/config.py"


def test_each_container_config_is_valid_for_its_role(
    overlay: tuple[Doc, ...], tmp_path: Path
) -> None:
    """Each role's env + Secret files build a Config that passes `check_target(role)`."""
    for role, deployment in minitg_deployments(overlay).items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        cfg = effective_config(overlay, template, container, tmp_path)
        cfg.check_target(role)  # e.g. a role missing its broker URL would be memory://
    (job,) = [j for j in of_kind(overlay, "Job") if is_minitg(j["spec"]["template"])]
    template = job["spec"]["template"]
    (container,) = template["spec"]["containers"]
    cfg = effective_config(overlay, template, container, tmp_path)
    assert cfg.database_url.startswith("postgresql://"), "migrate would run on SQLite"


def _port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def _probes(container: Doc) -> dict[str, Doc]:
    kinds = ("readinessProbe", "livenessProbe", "startupProbe")
    return {k: container[k] for k in kinds if k in container}


def test_probe_ports_are_what_each_role_listens_on(
    overlay: tuple[Doc, ...], tmp_path: Path
) -> None:
    """gRPC probes hit the service's listen port with its full name; HTTP ones a real route."""
    routes = (REPO / "gateway" / "app.py").read_text(encoding="utf-8")
    metrics_routes = (REPO / "svckit" / "runner.py").read_text(encoding="utf-8")
    for role, deployment in minitg_deployments(overlay).items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        cfg = effective_config(overlay, template, container, tmp_path)
        probes = _probes(container)
        assert {"readinessProbe", "livenessProbe"} <= set(probes), role
        for kind, probe in probes.items():
            if "grpc" in probe:
                assert role in SERVICE_ROLES, f"{role}: gRPC {kind} on a role without gRPC"
                listen = getattr(cfg, f"{role}_listen")
                assert listen.port == probe["grpc"]["port"], f"{role} {kind}"
                server = importlib.import_module(f"{role}_service.server")
                assert server.SERVICE_NAME == probe["grpc"]["service"], f"{role} {kind}"
            else:
                http = probe["httpGet"]
                port = _port(container, http["port"])
                # /metrics is served on the metrics address by every role (the gateway's
                # HTTP port never serves it); anything else is a gateway route.
                on_metrics = http["path"] == "/metrics"
                served = cfg.metrics_addr if on_metrics else cfg.http_addr
                assert served is not None
                assert served.port == port, f"{role} {kind}"
                source = metrics_routes if on_metrics else routes
                assert f'add_get("{http["path"]}"' in source, f"{role} {kind}: no such route"
        readiness = probes["readinessProbe"]
        if role == "gateway":
            assert "/v1/health" == readiness["httpGet"]["path"]
            # Liveness must not depend on backends: /v1/health does.
            assert "/v1/health" != probes["livenessProbe"]["httpGet"]["path"]
        else:
            assert "grpc" in readiness, f"{role}: readiness must be the gRPC health check"
            assert "grpc" not in probes["livenessProbe"], (
                f"{role}: gRPC health follows the backends; liveness must not"
            )


def test_container_and_service_ports(overlay: tuple[Doc, ...]) -> None:
    """Containers expose 8080 (gateway) or 50051, and 9090 for /metrics; Services select and
    target them."""
    deployments = minitg_deployments(overlay)
    services = {s["metadata"]["name"]: s for s in of_kind(overlay, "Service")}
    for role, deployment in deployments.items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        serving = {"http": 8080} if role == "gateway" else {"grpc": 50051}
        assert serving | {"metrics": 9090} == ports, role
        service = services[role]
        labels = template["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), role
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{role}: {port}"
        if role in SERVICE_ROLES:  # headless: clients see every ready pod
            assert "None" == service["spec"].get("clusterIP"), role


def test_dial_targets_reach_the_services(overlay: tuple[Doc, ...], tmp_path: Path) -> None:
    """MINITG_<ROLE>_TARGET names the role's Service on the role's gRPC port."""
    gateway = minitg_deployments(overlay)["gateway"]
    template = gateway["spec"]["template"]
    (container,) = template["spec"]["containers"]
    cfg = effective_config(overlay, template, container, tmp_path)
    for role in SERVICE_ROLES:
        target = getattr(cfg, f"{role}_target")
        assert re.fullmatch(rf"(dns:///)?{role}:50051", target), target


def test_gateway_pod_id_is_the_pod_name(overlay: tuple[Doc, ...]) -> None:
    """The gateway's MINITG_POD_ID (its delivery queue) comes from metadata.name."""
    gateway = minitg_deployments(overlay)["gateway"]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    env = container_env(overlay, container)
    assert {"fieldRef": {"fieldPath": "metadata.name"}} == env["MINITG_POD_ID"]


def test_pods_run_unprivileged(overlay: tuple[Doc, ...]) -> None:
    """Every pod: non-root, RuntimeDefault seccomp, no privilege escalation, no capabilities."""
    for workload, template in pod_templates(overlay):
        name = workload["metadata"]["name"]
        spec = template["spec"]
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, name
        assert {"type": "RuntimeDefault"} == pod_sc.get("seccompProfile"), name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            sc = container.get("securityContext", {})
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert ["ALL"] == sc.get("capabilities", {}).get("drop"), name
            if container["name"] not in WRITABLE_ROOT_ALLOWED:
                assert sc.get("readOnlyRootFilesystem") is True, name
            assert "limits" in container.get("resources", {}), name
            assert "requests" in container["resources"], name
        if is_minitg(template):
            assert 10001 == pod_sc.get("runAsUser"), name
            (container,) = spec["containers"]
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert 1 == len(tmp) and "emptyDir" in volumes[tmp[0]["name"]], name


def _prestop_seconds(container: Doc) -> int:
    handler = container["lifecycle"]["preStop"]
    if "sleep" in handler:
        return int(handler["sleep"]["seconds"])
    command = handler["exec"]["command"]
    assert "sleep" == command[0], command
    return int(command[-1])


def test_termination_grace_covers_prestop_and_shutdown(
    overlay: tuple[Doc, ...], tmp_path: Path
) -> None:
    """terminationGracePeriodSeconds > preStop sleep + MINITG_SHUTDOWN_GRACE_SECONDS."""
    for role, deployment in minitg_deployments(overlay).items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        cfg = effective_config(overlay, template, container, tmp_path)
        prestop = _prestop_seconds(container)
        assert prestop >= 1, role
        grace = template["spec"]["terminationGracePeriodSeconds"]
        assert grace > prestop + cfg.shutdown_grace_seconds, role


def test_auth_reads_signing_keys_from_a_secret(overlay: tuple[Doc, ...], tmp_path: Path) -> None:
    """Only auth mounts the JWT keys Secret, at MINITG_JWT_KEYS_DIR, and never generates."""
    for role, deployment in minitg_deployments(overlay).items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        cfg = effective_config(overlay, template, container, tmp_path)
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        key_mounts = [
            m
            for m in container["volumeMounts"]
            if volumes[m["name"]]
            .get("secret", {})
            .get("secretName", "")
            .startswith("minitg-jwt-keys")
        ]
        if role != "auth":
            assert [] == key_mounts, role
            continue
        assert [str(cfg.auth.keys_dir)] == [m["mountPath"] for m in key_mounts]
        assert cfg.auth.generate_keys is False


def test_dev_secrets_are_complete_and_the_dev_key_loads(tmp_path: Path) -> None:
    """The dev overlay generates every Secret key the pods mount, and a usable JWT key."""
    docs = render("k8s/overlays/dev")
    secrets = {s["metadata"]["name"].rsplit("-", 1)[0]: s for s in of_kind(docs, "Secret")}
    assert SECRET_KEYS == set(secrets["minitg-secrets"]["data"])
    for name, value in secrets["minitg-jwt-keys"]["data"].items():
        (tmp_path / name).write_bytes(base64.b64decode(value))
    keys = load_signing_keys(tmp_path, generate_if_empty=False)
    assert 1 <= len(keys)


def test_autoscaling_and_disruption_budgets() -> None:
    """Prod autoscales gateway and chat (no fixed replicas); dev runs one of each."""
    prod = render("k8s/overlays/prod")
    deployments = minitg_deployments(prod)
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(prod, "HorizontalPodAutoscaler")
    }
    assert {"gateway", "chat"} == set(hpas)
    for role, deployment in deployments.items():
        assert ("replicas" in deployment["spec"]) == (role not in hpas), role
        if role not in hpas:
            assert deployment["spec"]["replicas"] >= 2, role
    for hpa in hpas.values():
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    dev = render("k8s/overlays/dev")
    assert [] == of_kind(dev, "HorizontalPodAutoscaler")
    for role, deployment in minitg_deployments(dev).items():
        assert 1 == deployment["spec"].get("replicas", 1), role
    for docs in (prod, dev):
        budgets = of_kind(docs, "PodDisruptionBudget")
        labels = {
            r: d["spec"]["template"]["metadata"]["labels"]
            for r, d in minitg_deployments(docs).items()
        }
        covered = {
            role
            for role, pod_labels in labels.items()
            for b in budgets
            if b["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        }
        assert set(ROLES) == covered


def _admitted_components(policy: Doc, port: int) -> set[str] | None:
    """Components admitted on ``port`` (None: anyone, i.e. a rule without `from`)."""
    admitted: set[str] = set()
    for rule in policy["spec"].get("ingress", []):
        if port not in [p["port"] for p in rule.get("ports", [])]:
            continue
        if "from" not in rule:
            return None
        for peer in rule["from"]:
            for expr in peer.get("podSelector", {}).get("matchExpressions", []):
                if expr["key"] == "app.kubernetes.io/component":
                    admitted |= set(expr["values"])
    return admitted


def test_network_policies(overlay: tuple[Doc, ...]) -> None:
    """Default deny; only the gateway is open; each service admits only its callers."""
    policies = of_kind(overlay, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies)
    by_role = {
        p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: p
        for p in policies
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "minitg"
    }
    assert set(ROLES) == set(by_role)
    assert _admitted_components(by_role["gateway"], 8080) is None
    for role in ("gateway", *ALLOWED_CALLERS):
        if role in ALLOWED_CALLERS:
            assert ALLOWED_CALLERS[role] == _admitted_components(by_role[role], 50051), role
        metrics_rules = [
            peer["namespaceSelector"]["matchLabels"]
            for rule in by_role[role]["spec"]["ingress"]
            if 9090 in [p["port"] for p in rule["ports"]]
            for peer in rule["from"]
        ]
        assert [{"kubernetes.io/metadata.name": "monitoring"}] == metrics_rules, role


def test_prod_settings() -> None:
    """Prod: quorum queues, JSON logs, and no Secret values in the rendering."""
    prod = render("k8s/overlays/prod")
    (config,) = of_kind(prod, "ConfigMap")
    assert "quorum" == config["data"]["MINITG_BROKER_QUEUE_TYPE"]
    assert "json" == config["data"]["MINITG_LOG_FORMAT"]
    assert [] == of_kind(prod, "Secret")
    images = {
        c["image"] for _, t in pod_templates(prod) for c in t["spec"]["containers"] if is_minitg(t)
    }
    assert 1 == len(images) and not images.pop().endswith(":latest")


# --- monitoring --------------------------------------------------------------------------

MONITORING = REPO / "k8s" / "monitoring"
# Metrics announced before the code defines them (name -> type). Empty: every metric the
# dashboard and the alerts use now exists in svckit/metrics.py.
MESSAGING_METRICS: dict[str, str] = {}
# From kube-state-metrics and the kubelet's cAdvisor.
EXTERNAL_METRICS = {
    "kube_pod_status_ready",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
}
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right",
    "le", "bool", "offset", "topk", "bottomk", "abs", "clamp_min",
}  # fmt: skip


def _exposed(name: str, kind: str) -> set[str]:
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


@functools.cache
def known_metrics() -> frozenset[str]:
    """Series names svckit/metrics.py exposes, plus the messaging work's and external ones."""
    names: set[str] = set(EXTERNAL_METRICS)
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                suffix = "_total" if family.type == "counter" else ""
                names |= _exposed(family.name + suffix, family.type)
    for name, kind in MESSAGING_METRICS.items():
        names |= _exposed(name, kind)
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (labels, strings, functions removed)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"label_values\((\w+),\s*\w+\)", r"\1", expr)  # Grafana's variable query
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]|\$\w+", "", expr)
    tokens = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)
    return {t for t in tokens if t not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", t)}


def alert_rules() -> list[Doc]:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_alerts_have_summaries_and_runbooks() -> None:
    """Every alert has a summary, a description and a runbook anchor in OPERATIONS.md."""
    anchors = github_anchors((REPO / "docs" / "OPERATIONS.md").read_text(encoding="utf-8"))
    alerts = [r for r in alert_rules() if "alert" in r]
    assert len(alerts) >= 8
    for rule in alerts:
        notes = rule["annotations"]
        assert notes.get("summary") and notes.get("description"), rule["alert"]
        url, _, anchor = notes["runbook_url"].partition("#")
        assert url.endswith("docs/OPERATIONS.md"), rule["alert"]
        assert rule["alert"].lower() == anchor, rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no '### {rule['alert']}' runbook section"
        assert rule["labels"]["severity"] in {"page", "ticket", "warning"}


def test_rules_and_dashboard_use_only_known_metrics() -> None:
    """Every series in the alerts and the dashboard exists, or is a declared future metric."""
    rules = alert_rules()
    recorded = {r["record"] for r in rules if "record" in r}
    known = known_metrics() | recorded
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    exprs = [r["expr"] for r in rules]
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    for expr in exprs:
        assert set() == metric_names(expr) - known, expr


def test_slo_cuts_are_bucket_boundaries() -> None:
    """A `le` an SLO rule selects is a real bucket of that histogram (when it exists)."""
    histograms = {v._name: v for v in vars(metrics).values() if isinstance(v, Histogram)}
    cuts = 0
    for rule in alert_rules():
        for name, le in re.findall(r'(minitg_\w+)_bucket\{[^}]*le="([^"]+)"', rule["expr"]):
            if name in histograms:
                assert float(le) in histograms[name]._upper_bounds, (name, le)
                cuts += 1
    assert cuts >= 1


def test_dashboard_is_importable() -> None:
    """The dashboard has a schema version, unique panel ids, and a query on every panel."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        assert panel.get("targets"), panel["title"]
        assert all(t.get("expr", "").strip() for t in panel["targets"]), panel["title"]
        assert {"h", "w", "x", "y"} == set(panel["gridPos"]), panel["title"]


def test_monitoring_kustomization_ships_both_files() -> None:
    """`kubectl kustomize k8s/monitoring` wraps the rule file and the dashboard verbatim."""
    configmaps = {c["metadata"]["name"]: c for c in of_kind(render("k8s/monitoring"), "ConfigMap")}
    rules = configmaps["minitg-alert-rules"]["data"]["minitg.rules.yaml"]
    assert (MONITORING / "alerts.yaml").read_text(encoding="utf-8") == rules
    board = configmaps["minitg-dashboard"]["data"]["minitg.json"]
    assert json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8")) == json.loads(
        board
    )


def test_metric_name_extraction() -> None:
    """The PromQL scan finds series names and nothing else (so the check above can fail)."""
    expr = (
        'histogram_quantile(0.99, sum by (le, pod) (rate(minitg_x_bucket{a="b", le="0.25"}'
        "[$__rate_interval]))) / on (pod) group_left kube_pod_status_ready > 0.1"
    )
    assert {"minitg_x_bucket", "kube_pod_status_ready"} == metric_names(expr)
