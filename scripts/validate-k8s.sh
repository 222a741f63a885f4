#!/usr/bin/env bash
# Renders every Kubernetes kustomization under deploy/k8s and validates what it renders, offline:
#   - kubectl kustomize (what `kubectl apply -k` renders) for the base, the top level, and the top
#     level with each component (keda, monitoring, dev) and with all of them;
#   - the built-in kinds against the Kubernetes JSON schemas (kubernetes-validate, strict);
#   - our production rules (scripts/validate_k8s.py): no replicas on autoscaled Deployments, probes,
#     preStop, security context, voice-relay grace >= drain, Ingress routes only Twilio's paths,
#     NetworkPolicies, KEDA triggers on lag of the real streams and groups, and more.
# The renders use secrets.env.example as secrets.env (in a scratch copy; deploy/k8s is not touched).
# Not checked here: anything that needs an API server (`kubectl apply --dry-run=client|server`
# needs one for discovery), admission (Pod Security), CRD schemas of KEDA and the Prometheus
# operator (checked structurally instead).
# Usage: scripts/validate-k8s.sh        Exit status: 0 when every variant passes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# --- tools (installed quietly when missing) --------------------------------------------------------
if ! command -v kubectl >/dev/null 2>&1; then
    echo "validate-k8s: kubectl (with kustomize) is required and not on PATH" >&2
    exit 2
fi
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --disable-pip-version-check pyyaml >/dev/null 2>&1 \
        || { apt-get install -y -qq python3-yaml >/dev/null 2>&1 && PYTHON=/usr/bin/python3; }
fi
if ! "$PYTHON" -c 'import kubernetes_validate' >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --disable-pip-version-check kubernetes-validate >/dev/null 2>&1 \
        || { echo "validate-k8s: could not install kubernetes-validate (pip)" >&2; exit 2; }
fi

# --- render ----------------------------------------------------------------------------------------
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r deploy/k8s "$WORK/k8s"
rm -f "$WORK/k8s/secrets.env"
cp deploy/k8s/secrets.env.example "$WORK/k8s/secrets.env"

# A copy of the top-level kustomization with the given components enabled.
variant() { # name, components...
    local name=$1
    shift
    local dir="$WORK/variant-$name"
    cp -r "$WORK/k8s" "$dir"
    if [ $# -gt 0 ]; then
        local list=""
        for component in "$@"; do list+="  - components/$component\n"; done
        # Replace the (commented) components list with the chosen ones.
        "$PYTHON" - "$dir/kustomization.yaml" "$list" <<'EOF'
import re, sys
path, items = sys.argv[1], sys.argv[2].replace("\\n", "\n")
text = open(path).read()
text, count = re.subn(r"(?m)^components:\n(?:#.*\n| *- .*\n)*", "components:\n" + items, text)
if count != 1:
    sys.exit("validate-k8s: no components: list in " + path)
open(path, "w").write(text)
EOF
    fi
    echo "$dir"
}

status=0
args=()
render() { # name, dir
    local out="$WORK/$1.yaml"
    if ! kubectl kustomize "$2" >"$out" 2>"$WORK/$1.err"; then
        echo "RENDER FAILED $1: $(tr '\n' ' ' <"$WORK/$1.err")"
        status=1
        return
    fi
    args+=("$1=$out")
}

render base "$WORK/k8s/base"
render default "$(variant default)"
render keda "$(variant keda keda)"
render monitoring "$(variant monitoring monitoring)"
render dev "$(variant dev dev)"
render all "$(variant all keda monitoring dev)"

# Without secrets.env the top level must refuse to render (no Secret is ever made up).
rm "$WORK/variant-default/secrets.env"
if kubectl kustomize "$WORK/variant-default" >/dev/null 2>&1; then
    echo "PROBLEM default: renders without secrets.env"
    status=1
fi

# secrets.env holds real credentials: git must never pick it up.
if git rev-parse --git-dir >/dev/null 2>&1 && ! git check-ignore -q deploy/k8s/secrets.env; then
    echo "PROBLEM deploy/k8s/secrets.env is not git-ignored"
    status=1
fi

"$PYTHON" scripts/validate_k8s.py "$ROOT" "${args[@]}" || status=1
# The rules themselves: each deliberate break of the full render must be caught.
if [ -f "$WORK/all.yaml" ]; then
    "$PYTHON" scripts/validate_k8s.py --self-test "$ROOT" "$WORK/all.yaml" || status=1
fi
echo "kubectl apply -k deploy/k8s --dry-run=client: needs an API server for discovery (not available offline); the render above is what it applies."
exit $status
