# Installs (once, cached) the tools of the deploy checks and exports:
#   HELM       helm, built from its Go module (no prebuilt download needed)
#   DEPLOY_PY  python of a virtualenv with deploy/tests/requirements.txt
#   PROMTOOL   promtool, extracted from Debian's prometheus package
# Source it after scripts/lib.sh: `. deploy/tests/tools.sh`.
# The cache lives outside the work tree (APPROVALD_TOOLS_DIR, default
# ~/.cache/approvald-deploy), so fresh clones on the same machine reuse it.

HELM_VERSION=v3.22.0
# The plain manifest's Kubernetes version: the oldest with the preStop `sleep`
# handler on by default (see deploy/README.md).
MANIFEST_KUBE_VERSION=1.30.0
# The oldest Kubernetes version the chart supports and CI validates.
MIN_KUBE_VERSION=1.28

TOOLS_DIR="${APPROVALD_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/approvald-deploy}"

need_helm() {
  HELM="$TOOLS_DIR/helm-$HELM_VERSION/helm"
  if [ ! -x "$HELM" ]; then
    command -v go >/dev/null || { echo "go is missing: needed to build helm $HELM_VERSION" >&2; return 1; }
    log "building helm $HELM_VERSION from its Go module (once; cached in $TOOLS_DIR)"
    GOBIN="$TOOLS_DIR/helm-$HELM_VERSION" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  fi
  export HELM
}

need_deploy_python() {
  local req="$ROOT/deploy/tests/requirements.txt" venv
  venv="$TOOLS_DIR/venv-$(sha256sum "$req" | cut -c1-12)"
  mkdir -p "$TOOLS_DIR"
  # One installer at a time: suites of several work trees share the cache,
  # and a second installer would delete the first one's half-made venv.
  (
    flock 9
    if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
      log "installing $(grep -v '^#' "$req" | xargs) into $venv (once)"
      rm -rf "$venv"
      python3 -m venv "$venv" 2>/dev/null || { need_apt python3-venv && python3 -m venv "$venv"; }
      "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
      touch "$venv/.complete"
    fi
  ) 9>"$TOOLS_DIR/.install.lock"
  DEPLOY_PY="$venv/bin/python"
  export DEPLOY_PY
}

# promtool from Debian's `prometheus` package: downloaded and unpacked, not
# installed (installing would add and start a Prometheus service). Any
# version with `check rules` and `test rules` will do (Debian 12: 2.42).
need_promtool() {
  PROMTOOL="$TOOLS_DIR/promtool/usr/bin/promtool"
  mkdir -p "$TOOLS_DIR"
  (
    flock 9
    [ -x "$PROMTOOL" ] && exit 0
    log "fetching promtool from Debian's prometheus package (once; cached in $TOOLS_DIR)"
    tmp="$(mktemp -d)"
    if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
      [ "$(id -u)" = 0 ] || { rm -rf "$tmp"; echo "apt-get download prometheus failed: run apt-get update as root" >&2; exit 1; }
      apt-get update -qq && (cd "$tmp" && apt-get download prometheus >/dev/null)
    fi
    rm -rf "$TOOLS_DIR/promtool" "$TOOLS_DIR/promtool.tmp"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$TOOLS_DIR/promtool.tmp"
    rm -rf "$tmp"
    mkdir -p "$TOOLS_DIR/promtool/usr/bin"
    mv "$TOOLS_DIR/promtool.tmp/usr/bin/promtool" "$PROMTOOL"
    rm -rf "$TOOLS_DIR/promtool.tmp"
  ) 9>"$TOOLS_DIR/.install.lock"
  "$PROMTOOL" --version >/dev/null
  export PROMTOOL
}

# helm template of the chart, as the plain manifest and the checks render it.
#   render KUBE_VERSION [helm template flags...]
render() {
  local kube="$1"; shift
  "$HELM" template approvald "$ROOT/deploy/helm/approvald" --namespace approvald \
    --kube-version "$kube" "$@"
}
