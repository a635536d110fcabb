"""NetworkPolicies, evaluated: who can open a connection to whom once they are applied.

A schema check says a policy is well formed, not what it allows. So the rendered policies are
evaluated with the Kubernetes semantics (a pod selected by a policy of a type is isolated for
that direction; a connection needs the source's egress and the destination's ingress; peers
by pod selector, namespace selector, both, or ipBlock; ports by number, range or name of the
destination's container port) over the pods of the rendered workloads plus the neighbours a
cluster has (Prometheus, an ingress controller, DNS, other apps, hosts outside), and the result
is held against :data:`CONTRACT`, what deploy/README.md promises.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.deploy.validators.common import Problems
from tests.deploy.validators.kustomize import containers, label, pod_labels, pod_spec

KIT = "celery-kit"
NAME, COMPONENT = "app.kubernetes.io/name", "app.kubernetes.io/component"


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels) or a host outside the cluster (an address)."""

    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # name -> (port, proto)
    address: str | None = None


def _pod(name: str, namespace: str, labels: Mapping[str, str], **ports: int) -> Endpoint:
    return Endpoint(name, namespace, labels, {n: (p, "TCP") for n, p in ports.items()})


# The cluster around the deployment. The operators' entry point, Prometheus's and Jaeger's
# namespaces are the ones networkpolicies.yaml names: change both together.
NEIGHBOURS = [
    _pod("console", KIT, {NAME: KIT, COMPONENT: "console"}, http=8080),
    _pod("stranger", KIT, {NAME: "stranger"}, http=8080),
    _pod("prometheus", "monitoring", {NAME: "prometheus"}),
    _pod("ingress-controller", "ingress-nginx", {NAME: "ingress-nginx"}),
    _pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}),
    _pod("jaeger", "observability", {NAME: "jaeger"}, otlp=4317),
    _pod("web-app", "shop", {NAME: "shop"}),
    _pod("other-app", "other", {NAME: "other"}, otlp=4317),
    Endpoint("smtp-server", address="203.0.113.25"),
    Endpoint("hosted-otlp", address="198.51.100.7"),
]
NAMESPACE_LABELS = {
    "shop": {"celery-kit/send-telemetry": "true"},
}

KIT_CLIENTS = {"worker", "beat", "flower", "console"}


@dataclass(frozen=True)
class Rule:
    """Exactly ``sources`` (endpoint names) may reach ``destination`` on ``port``; for a
    destination outside the namespace, only the namespace's own pods are held to it (the
    others' egress is not this deployment's to decide)."""

    destination: str
    port: int
    sources: frozenset[str]
    protocol: str = "TCP"
    why: str = ""


CONTRACT = [
    Rule("redis", 6379, frozenset(KIT_CLIENTS), why="only the kit's processes reach Redis"),
    Rule("otel-collector", 4317, frozenset({*KIT_CLIENTS, "web-app"}), why="OTLP gRPC"),
    Rule("otel-collector", 4318, frozenset({*KIT_CLIENTS, "web-app"}), why="OTLP HTTP"),
    Rule("otel-collector", 8889, frozenset({"prometheus"}), why="the Collector's metrics"),
    Rule("worker", 9464, frozenset({"prometheus"}), why="worker metrics"),
    Rule("flower", 5555, frozenset({"ingress-controller"}), why="Flower from the operators"),
    Rule("console", 8080, frozenset({"ingress-controller"}), why="console from the operators"),
    Rule("jaeger", 4317, frozenset({"otel-collector"}), why="traces to Jaeger"),
    Rule("smtp-server", 587, frozenset({"worker"}), why="email:deliver"),
]
# Nothing of the kit's sends OTLP anywhere but to the Collector (which forwards it to Jaeger).
OTLP_PORTS = (4317, 4318)
COLLECTOR = "otel-collector"


def endpoints(resources: Iterable[Mapping[str, Any]]) -> list[Endpoint]:
    """One pod per rendered workload, named by its component (or its name), then NEIGHBOURS."""
    pods = []
    for resource in resources:
        if pod_spec(resource) is None:
            continue
        labels = pod_labels(resource)
        ports = {
            port["name"]: (int(port["containerPort"]), port.get("protocol", "TCP"))
            for container in containers(resource)
            for port in container.get("ports") or []
            if "name" in port
        }
        name = labels.get(COMPONENT) or labels.get(NAME) or resource["metadata"]["name"]
        pods.append(Endpoint(name, resource["metadata"].get("namespace"), labels, ports))
    return [*pods, *NEIGHBOURS]


def network_policy_problems(resources: list[dict[str, Any]]) -> Problems:
    """Selectors that select nothing, named ports no selected pod has, and every breach of
    :data:`CONTRACT`. Nothing to say without policies (an overlay may drop them all)."""
    policies = [r for r in resources if r["kind"] == "NetworkPolicy"]
    if not policies:
        return []
    everyone = endpoints(resources)
    problems: Problems = []
    for policy in policies:
        selected = [e for e in everyone if _selects(policy, e)]
        if not selected:
            problems.append(f"{label(policy)}: podSelector selects no pod")
        for rule in policy["spec"].get("ingress") or []:
            for port in rule.get("ports") or []:
                name = port.get("port")
                if isinstance(name, str) and not any(name in e.ports for e in selected):
                    problems.append(f"{label(policy)}: no selected pod has a port named {name}")
    by_name = {e.name: e for e in everyone}
    for rule in CONTRACT:
        destination = by_name[rule.destination]
        candidates = [
            e
            for e in everyone
            if e is not destination and (destination.namespace == KIT or e.namespace == KIT)
        ]
        allowed = {
            e.name for e in candidates if allows(policies, e, destination, rule.port, rule.protocol)
        }
        for name in sorted(allowed - rule.sources):
            problems.append(f"{name} reaches {rule.destination}:{rule.port} ({rule.why})")
        for name in sorted(rule.sources - allowed):
            problems.append(f"{name} cannot reach {rule.destination}:{rule.port} ({rule.why})")
    ours = [e for e in everyone if e.namespace == KIT]
    for source in ours:
        if not allows(policies, source, by_name["kube-dns"], 53, "UDP"):
            problems.append(f"{source.name} cannot resolve names (DNS)")
        for destination in everyone if source.name != COLLECTOR else []:
            for port in OTLP_PORTS:
                if (
                    destination.name != COLLECTOR
                    and destination is not source
                    and allows(policies, source, destination, port, "TCP")
                ):
                    problems.append(f"{source.name} sends OTLP to {destination.name}:{port}")
    return problems


def allows(
    policies: list[dict[str, Any]],
    source: Endpoint,
    destination: Endpoint,
    port: int,
    protocol: str,
) -> bool:
    """Whether ``source`` may open a connection to ``destination`` on ``port``."""
    return _direction_allows(policies, "Egress", source, destination, port, protocol) and (
        _direction_allows(policies, "Ingress", destination, source, port, protocol)
    )


def _direction_allows(
    policies: list[dict[str, Any]],
    direction: str,
    subject: Endpoint,
    peer: Endpoint,
    port: int,
    protocol: str,
) -> bool:
    """Egress of ``subject`` towards ``peer``, or ingress of ``subject`` from ``peer``."""
    applying = [p for p in policies if direction in _types(p) and _selects(p, subject)]
    if not applying:
        return True  # not isolated in this direction
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    # The named ports of a rule are the destination's: the peer's for egress.
    target = peer if direction == "Egress" else subject
    for policy in applying:
        namespace = policy["metadata"].get("namespace")
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key) or []
            if peers and not any(_peer_matches(p, namespace, peer) for p in peers):
                continue
            if _ports_match(rule.get("ports") or [], target, port, protocol):
                return True
    return False


def _types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy["spec"]
    default = ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
    types: list[str] = spec.get("policyTypes") or default
    return types


def _selects(policy: Mapping[str, Any], endpoint: Endpoint) -> bool:
    return endpoint.namespace == policy["metadata"].get("namespace") and _label_match(
        policy["spec"].get("podSelector") or {}, endpoint.labels
    )


def _peer_matches(peer: Mapping[str, Any], namespace: str | None, endpoint: Endpoint) -> bool:
    if "ipBlock" in peer:
        if endpoint.address is None:
            return False  # pod addresses under an ipBlock are plugin-specific: not relied on
        address = ipaddress.ip_address(endpoint.address)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except") or []
        )
    if endpoint.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {
            "kubernetes.io/metadata.name": endpoint.namespace,
            **NAMESPACE_LABELS.get(endpoint.namespace, {}),
        }
        if not _label_match(peer["namespaceSelector"], namespace_labels):
            return False
    elif endpoint.namespace != namespace:
        return False
    return _label_match(peer.get("podSelector") or {}, endpoint.labels)


def _ports_match(
    ports: list[Mapping[str, Any]], target: Endpoint, port: int, protocol: str
) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if target.ports.get(wanted) == (port, protocol):
                return True
        elif wanted <= port <= int(entry.get("endPort", wanted)):
            return True
    return False


def _label_match(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True
