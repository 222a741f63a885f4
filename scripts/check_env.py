#!/usr/bin/env python3
"""The environment variables the deployment files set must be ones the services read, and
.env.example must document every variable the services and the development tools read."""
import pathlib
import re
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
# Deployable services (Shared/, Services/) and the development tools (DevTools/: twilio-sim, the benchmark).
sources = "\n".join(p.read_text() for folder in ("Shared", "Services", "DevTools") for p in (root / folder).rglob("*.swift"))
read = set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', sources))
prefixes = ["CONVERSATION_RELAY_"] + [f"TAC_{c}_MEMORY_MODE" for c in ("SMS", "WHATSAPP", "RCS", "CHAT", "VOICE")]


def is_read(name):
    return name in read or any(name.startswith(p) for p in prefixes)


failures = []
set_by = {}
for path in list((root / "deploy" / "k8s").rglob("*.yaml")) + [root / "compose.yaml"]:
    for doc in yaml.safe_load_all(path.read_text()):
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") in ("ConfigMap", "Secret"):
            for key in list((doc.get("data") or {})) + list((doc.get("stringData") or {})):
                set_by.setdefault(key, path.name)
        for container in (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers", []):
            for env in container.get("env", []):
                set_by.setdefault(env["name"], path.name)
        for name, service in (doc.get("services") or {}).items():
            environment = service.get("environment") or {}
            for key in environment if isinstance(environment, dict) else []:
                if key != "<<":
                    set_by.setdefault(key, f"compose.yaml:{name}")
        for key in (doc.get("x-urls") or {}):
            set_by.setdefault(key, "compose.yaml:x-urls")

for name, where in sorted(set_by.items()):
    if name.startswith("POSTGRES_"):
        continue  # the postgres image's own settings
    if not is_read(name):
        failures.append(f"{where} sets {name}, which no service reads")

example = (root / ".env.example").read_text()
documented = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", example, re.M))  # "# NAME=value": documented, commented out
for name in sorted(read):
    if name.startswith(("TEST_", "AC_")) or name in ("PATH", "HOME"):
        continue
    if re.match(r"^(TWILIO|REDIS|DATABASE|HTTP|TAC|OUTBOUND|LOG|INSTANCE|BUS|AGENT|WEBHOOK|VOICE|SIM|MIGRATE|ECHO|OPENAI|CONVERSATION_INTELLIGENCE)_", name) and name not in documented:
        failures.append(f".env.example does not document {name}")
for name in documented:
    # OpenTelemetry's standard variables are read by swift-otel itself (service name, sampler,
    # headers, resource attributes), not by our code.
    if name.startswith("OTEL_"):
        continue
    if not is_read(name):
        failures.append(f".env.example documents {name}, which no service reads")

for failure in failures:
    print("env-check:", failure)
print(f"env-check: {len(set_by)} deployment variables, {len(read)} names read by the services, {len(failures)} problems")
sys.exit(1 if failures else 0)
