"""PromQL, parsed (and type-checked) by ``promql-parser``: the expressions of the alert rules,
the dashboard and the autoscalers, and the metric and label names they use."""

from __future__ import annotations

from typing import Any


def parse_promql(expr: str) -> Any:
    import promql_parser

    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (ValueError if it does not parse)."""
    import promql_parser

    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(str(node.name))
        return True

    promql_parser.walk(parse_promql(expr), visit)
    return names


def label_names(expr: str) -> set[str]:
    """Label names an expression matches on, groups by or joins on."""
    import promql_parser

    labels: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            labels.update(str(m.name) for m in node.matchers.matchers)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(str(label) for label in node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None:
                labels.update(str(label) for label in matching.labels)
        return True

    promql_parser.walk(parse_promql(expr), visit)
    return labels
