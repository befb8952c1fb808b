# Shared by scripts/test and scripts/demo: system packages (when asked), the venv, the package.
# Source it from the repository root after setting `logs` and `extra` (pip extra to install).



have_pg() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }

apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            say "missing system packages ($*): run as root or install them: apt-get install -y $*"
            exit 2
        fi
    fi
    say "installing $* (apt output in $apt_log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"; } >>"$apt_log" 2>&1; then
        say "apt-get install $* failed; last lines of $apt_log:"
        tail -n 20 "$apt_log" >&2
        exit 2
    fi
}

# --- system packages (tests need the PostgreSQL server and chromium; the demo needs neither) ----
missing=()
if [ "${need_system:-0}" = 1 ]; then
    have_pg || missing+=(postgresql)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
command -v python3 >/dev/null || missing+=(python3 python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi
if [ "${need_system:-0}" = 1 ]; then
    have_pg || { say "PostgreSQL server binaries still missing after install"; exit 2; }
fi

# --- virtual environment ----------------------------------------------------------------------
py=python3
command -v python3.11 >/dev/null && py=python3.11
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($py --version 2>&1)"
    if ! $py -m venv .venv >>"$logs/venv.log" 2>&1; then
        rm -rf .venv
        apt_install python3-venv
        $py -m venv .venv
    fi
fi
# shellcheck disable=SC1091
. .venv/bin/activate

stamp=.venv/.motcua-install-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)-$extra
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! python -c "import engine, ${check_import:-engine}" 2>/dev/null; then
    say "installing motcua [$extra] (pip output in $logs/pip.log)"
    if ! { python -m pip install -q --upgrade pip && python -m pip install -e ".[$extra]"; } >>"$logs/pip.log" 2>&1; then
        say "pip install failed; last lines of $logs/pip.log:"
        tail -n 20 "$logs/pip.log" >&2
        exit 2
    fi
    echo "$want" >"$stamp"
fi

