"""Parses Prometheus text from stdin with prometheus_client's own parsers and
prints the families as JSON: [{"name", "type", "samples": [[name, labels, value]]}].

Usage: parse_metrics.py classic|openmetrics
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_classic

text = sys.stdin.read()
parse = parse_classic if sys.argv[1] == "classic" else parse_openmetrics
families = []
for family in parse(text):
    samples = [[s.name, dict(s.labels), s.value] for s in family.samples]
    families.append({"name": family.name, "type": family.type, "samples": samples})
print(json.dumps(families))
