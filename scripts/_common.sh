# Sourced by the scripts in this folder: go to the repository root and prefer the project's .venv.
# (Not executable on its own.)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -x "$ROOT/.venv/bin/python" ]]; then
  export VIRTUAL_ENV="$ROOT/.venv"
  export PATH="$ROOT/.venv/bin:$PATH"
fi
# gen-proto and the bench pick their interpreter from $PYTHON.
export PYTHON="${PYTHON:-$(command -v python || command -v python3)}"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
