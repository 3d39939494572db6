#!/usr/bin/env bash
# The one test command (README, "The two commands"; .ci/run calls exactly this). On a fresh
# Debian machine with the Rust toolchain and python3/pip it installs what the tests need, then
# runs every gate: formatting, clippy with warnings as errors, and every test of the workspace.
#
# System packages, each for the tests that use it (installed only when missing; as root, or
# through sudo):
#   adb                 the real adb client and server against the loopback device
#   chromium            headless Chromium for the HTML report tests
#   bubblewrap          confining the loopback device's shell to its root
#   libxml2-utils       xmllint, validating JUnit XML against Jenkins' schema
#   texlive-latex-recommended   pdflatex with booktabs, compiling the LaTeX tables
#   poppler-utils       pdftotext, reading the compiled tables back
#   postgresql          initdb/pg_ctl/postgres/psql for the throw-away servers the farm tests
#                       start themselves (tests/common/pg.rs); installed without Debian's default
#                       cluster (create_main_cluster = false), so no server runs by itself
#   iproute2            ip netns/veth, the farm tests' hosts as network namespaces
#                       (tests/common/netns.rs; needs root)
#   openssh-server      /usr/sbin/sshd, the private SSH server the ssh transport's tests start
#                       themselves (tests/common/sshd.rs: own config, keys and port; needs root);
#                       a system sshd, if the package starts one, is not used
#   openssh-client      ssh and ssh-keygen, which the ssh transport drives and the tests use
# ONNX Runtime and its plugins come from PyPI on first use (pip, pinned by sha256).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have adb || need+=(adb)
have chromium || need+=(chromium)
have bwrap || need+=(bubblewrap)
have xmllint || need+=(libxml2-utils)
have pdflatex || need+=(texlive-latex-recommended)
have pdftotext || need+=(poppler-utils)
have ip || need+=(iproute2)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
{ have ssh && have ssh-keygen; } || need+=(openssh-client)
need_pg=""
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_pg=postgresql
if [ ${#need[@]} -gt 0 ] || [ -n "$need_pg" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    have sudo || { echo "tests/run.sh: need root or sudo to install: ${need[*]} $need_pg" >&2; exit 1; }
    sudo="sudo"
  fi
  apt_install() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
  echo "tests/run.sh: installing ${need[*]} $need_pg" >&2
  $sudo apt-get update -qq
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
  if [ -n "$need_pg" ]; then
    # postgresql-common first, told not to create (and so not to start) the default cluster.
    apt_install postgresql-common
    $sudo sed -i -E 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf
    apt_install postgresql
  fi
fi
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

# One clean build, not an edit loop: incremental caches would only add gigabytes to target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "tests/run.sh: cargo fmt --all --check" >&2
cargo fmt --all --check
echo "tests/run.sh: cargo clippy --workspace --all-targets -- -D warnings" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "tests/run.sh: cargo test --workspace" >&2
cargo test --workspace
