# Shared set-up steps for berth's scripts: idempotent installs of what berth needs.
# Sourced, not run.

# Installs the Debian packages named as arguments that are not installed yet.
ensure_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Installs the Rust toolchain components the checks use.
ensure_rust_components() {
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
}

# Installs the Python packages the real-client tests use (boto3 and the aws CLI are
# expected on the machine; they are installed too if missing).
ensure_python_test_deps() {
  python3 -c "import pytest, boto3" 2>/dev/null || python3 -m pip install -q -r compat/requirements.txt
  command -v aws >/dev/null || python3 -m pip install -q awscli
}
