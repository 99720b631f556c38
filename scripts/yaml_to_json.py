#!/usr/bin/python3
"""Writes a YAML document as JSON (the build embeds docs/openapi.yaml as /v1/openapi.json).

Usage: yaml_to_json.py IN.yaml OUT.json  (Debian's python3-yaml)
"""
import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    doc = yaml.safe_load(f)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
