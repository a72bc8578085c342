#!/usr/bin/env bash
# Vivarium: build CPython 3.13 for wasm32-wasip1 from source, as a reactor module with the
# Vivarium C shim (shim/vivarium_reactor.c) and as an ordinary command module.
#
#   python-wasm/build.sh OUT_DIR WORK_DIR
#
# Needs only: bash, curl, sha256sum, tar, xz, make, gcc and a python3 (>= 3.8, used only to
# unpack wheels before the build-python exists). No root. Downloads come from Debian's pool and
# from PyPI only, each pinned by SHA-256 below and cached in WORK_DIR/downloads. The script is
# idempotent: every finished step is remembered in WORK_DIR/stamps (keyed by its inputs) and
# skipped on a rerun; an interrupted make simply resumes.
#
# The cross compiler is `zig cc` from the `ziglang` wheel on PyPI: one statically linked binary
# that carries clang/LLVM, wasm-ld and wasi-libc sources (with the wasi-emulated-* libraries),
# so nothing has to be installed system-wide. See python-wasm/README.md.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Pins: name | URL | SHA-256. Change a pin here and the steps that depend on it rebuild.
# ---------------------------------------------------------------------------------------------
PY_VERSION=3.13.5
PY_FILE=python3.13_3.13.5.orig.tar.xz
PY_URL=http://deb.debian.org/debian/pool/main/p/python3.13/$PY_FILE
# Same as Checksums-Sha256 in Debian's python3.13_3.13.5-2.dsc (trixie).
PY_SHA256=93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640
PY_RELEASE_EPOCH=1749600000          # 2025-06-11, CPython 3.13.5's release: SOURCE_DATE_EPOCH

ZLIB_VERSION=1.3.1
ZLIB_FILE=zlib_1.3.dfsg+really1.3.1.orig.tar.gz
ZLIB_URL=http://deb.debian.org/debian/pool/main/z/zlib/$ZLIB_FILE
# Same as Checksums-Sha256 in Debian's zlib_1.3.dfsg+really1.3.1-1.dsc (trixie).
ZLIB_SHA256=60dd315c07f616887caa029408308a018ace66e3d142726a97db164b3b8f69fb

ZIG_VERSION=0.15.2
ZIG_FILE=ziglang-0.15.2-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl
ZIG_URL=https://files.pythonhosted.org/packages/db/81/f9f5c7fd68d80b8edff2a641a1c95ac4125356387d298374227040b8e1e8/$ZIG_FILE
ZIG_SHA256=806316453d1ede7174ed3fefb8e5348154629089c3bb5fe812dfd0e172fac130

TZDATA_VERSION=2025.2
TZDATA_FILE=tzdata-2025.2-py2.py3-none-any.whl
TZDATA_URL=https://files.pythonhosted.org/packages/5c/23/c7abc0ca0a1526a0774eca151daeb8de62ec457e77262b66b359c3c7679e/$TZDATA_FILE
TZDATA_SHA256=1a403fada01ff9221ca8044d701868fa132215d84beb92242d9acd2147f667a8

NUMPY_VERSION=2.4.6
NUMPY_FILE=numpy-$NUMPY_VERSION.tar.gz
NUMPY_URL=https://files.pythonhosted.org/packages/d0/ad/fed0499ce6a338d2a03ebae59cd15093910c8875328855781952abf6c2fe/$NUMPY_FILE
NUMPY_SHA256=f3a3570c4a2a16746ac2c31a7c7c7b0c186b95ce902e33db6f28094ed7387dda

# numpy's build tools (its sdist vendors meson): Cython, pure Python, run by the build-python;
# ninja, a static x86_64 binary.
CYTHON_VERSION=3.3.1
CYTHON_FILE=cython-$CYTHON_VERSION-py3-none-any.whl
CYTHON_URL=https://files.pythonhosted.org/packages/9d/55/088578d75bc8dbcbc535af04b1d596ff227ca756dd74f9d3c1c526f955d0/$CYTHON_FILE
CYTHON_SHA256=61abc7feedd20dac6c4ff7ab3a30e17136a067b242ab9253e2b4a6d9a72c2b61

NINJA_VERSION=1.13.2
NINJA_FILE=ninja-$NINJA_VERSION-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
NINJA_URL=https://files.pythonhosted.org/packages/6e/53/ebfed7b689c338dd8ebeec9c0730c8d56821292f14e2536e5f3ef1a05744/$NINJA_FILE
NINJA_SHA256=65a24341b5ac09fcadcc37082660be40a94174e51a937fabf6e2cae26225fa2c

PANDAS_VERSION=3.1.1
PANDAS_FILE=pandas-$PANDAS_VERSION.tar.gz
PANDAS_URL=https://files.pythonhosted.org/packages/17/ca/24c6bc92aca3d366146358e47f1d374c0e1a50763ef226fc71eff20a63fb/$PANDAS_FILE
PANDAS_SHA256=05fed3e3b7c99b226f160e29d7d6cb7ef39638c758cbfe42b3f24ba34f04b859

# pandas' sdist does not vendor meson: meson's wheel, pure Python, run by the build-python.
# meson-python is not needed: meson builds and installs into a staging folder, no wheel.
MESON_VERSION=1.9.1
MESON_FILE=meson-$MESON_VERSION-py3-none-any.whl
MESON_URL=https://files.pythonhosted.org/packages/9c/07/b48592d325cb86682829f05216e4efb2dc881762b8f1bafb48b57442307a/$MESON_FILE
MESON_SHA256=f824ab770c041a202f532f69e114c971918ed2daff7ea56583d80642564598d0

# pandas' run-time dependency besides numpy, pure Python: its newest release, which needs
# only tzdata (above); dateutil 2.x needed six, 3.0 and later do not.
DATEUTIL_VERSION=4.0.0
DATEUTIL_FILE=python_dateutil-$DATEUTIL_VERSION-py3-none-any.whl
DATEUTIL_URL=https://files.pythonhosted.org/packages/2f/a9/52b89563d154433d79b51ed1eb4842bf7334cb2696891a7fe135618853d7/$DATEUTIL_FILE
DATEUTIL_SHA256=a5e246f79eb80475e691bf93862cead98decd8a498cf53ba0516fcdc0f50dc1c

# ---------------------------------------------------------------------------------------------
# Build settings.
# ---------------------------------------------------------------------------------------------
JOBS=${VIVARIUM_BUILD_JOBS:-2}
PY_MM=3.13                            # major.minor
WASM_OPT="-DNDEBUG -O2 -g0"           # optimisation of the wasm32 objects (CPython's OPT);
                                      # zig cc would add DWARF by default
NATIVE_OPT="-DNDEBUG -O2"             # optimisation of the native build-python
# The linear-memory stack and initial memory CPython's own WASI build uses (configure.ac).
WASM_STACK=8388608
WASM_INITIAL_MEMORY=20971520
# Pure-Python packages left out of OUT/lib/python3.13 (tests go to OUT/test instead).
STDLIB_EXCLUDE="test idlelib tkinter turtledemo ensurepip venv lib2to3 pydoc_data __phello__ turtle.py"
# numpy's extension modules, linked into the numpy reactor: its 13 runtime modules, then the
# helpers its own test suite imports (its conftest needs _multiarray_tests), so that the
# conformance run can use them; only _simd (the SIMD tests', with no SIMD here) is left out.
# _multiarray_umath comes first: a test helper compiling one of its sources again then finds
# its symbols already defined, and its own copy is never linked.
NUMPY_MODULES="numpy/_core/_multiarray_umath numpy/linalg/lapack_lite numpy/linalg/_umath_linalg
    numpy/fft/_pocketfft_umath numpy/random/_common numpy/random/bit_generator
    numpy/random/_bounded_integers numpy/random/_mt19937 numpy/random/_philox numpy/random/_pcg64
    numpy/random/_sfc64 numpy/random/_generator numpy/random/mtrand
    numpy/_core/_multiarray_tests numpy/_core/_umath_tests numpy/_core/_rational_tests
    numpy/_core/_struct_ufunc_tests numpy/_core/_operand_flag_tests"
# numpy's build options for a target without threads, SIMD dispatch, BLAS or LAPACK (numpy's
# own lapack_lite takes their place).
NUMPY_MESON_OPTIONS="-Dblas=none -Dlapack=none -Dallow-noblas=true -Ddisable-threading=true
    -Ddisable-optimization=true -Ddisable-highway=true -Ddisable-svml=true -Ddisable-intel-sort=true
    -Dcpu-baseline=none -Dcpu-dispatch=none --buildtype=release -Db_ndebug=true"
# pandas' extension modules, linked with numpy's into the pandas reactor: every module its
# build makes (none of them is only for its tests), the Cython utility module they share first.
PANDAS_MODULES="pandas/_libs/_cyutility pandas/_libs/_ujson pandas/_libs/algos
    pandas/_libs/arrays pandas/_libs/byteswap pandas/_libs/groupby pandas/_libs/hashing
    pandas/_libs/hashtable pandas/_libs/index pandas/_libs/indexing pandas/_libs/internals
    pandas/_libs/interval pandas/_libs/join pandas/_libs/lib pandas/_libs/missing pandas/_libs/ops
    pandas/_libs/ops_dispatch pandas/_libs/pandas_datetime pandas/_libs/pandas_parser
    pandas/_libs/parsers pandas/_libs/properties pandas/_libs/reshape pandas/_libs/sas
    pandas/_libs/sparse pandas/_libs/testing pandas/_libs/tslib pandas/_libs/writers
    pandas/_libs/tslibs/base pandas/_libs/tslibs/ccalendar pandas/_libs/tslibs/conversion
    pandas/_libs/tslibs/dtypes pandas/_libs/tslibs/fields pandas/_libs/tslibs/nattype
    pandas/_libs/tslibs/np_datetime pandas/_libs/tslibs/offsets pandas/_libs/tslibs/parsing
    pandas/_libs/tslibs/period pandas/_libs/tslibs/strptime pandas/_libs/tslibs/timedeltas
    pandas/_libs/tslibs/timestamps pandas/_libs/tslibs/timezones pandas/_libs/tslibs/tzconversion
    pandas/_libs/tslibs/vectorized pandas/_libs/window/aggregations pandas/_libs/window/indexers"
PANDAS_MESON_OPTIONS="--buildtype=release -Db_ndebug=true"
TOTAL_STEPS=13

# ---------------------------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------------------------
usage() {
    cat <<EOF
usage: $0 OUT_DIR WORK_DIR

Builds CPython $PY_VERSION for wasm32-wasip1 (reactor + command) into OUT_DIR, using
WORK_DIR for downloads, the toolchain and intermediate builds (reruns reuse them).
Environment: VIVARIUM_BUILD_JOBS (default 2): parallel make jobs.
EOF
}

die() {
    echo "build.sh: error: $*" >&2
    exit 1
}

STEP=0
step() {
    STEP=$((STEP + 1))
    echo "==> step $STEP/$TOTAL_STEPS: $*"
}

note() {
    echo "    $*"
}

# A step is done when WORK/stamps/NAME holds exactly KEY.
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { printf '%s' "$2" >"$STAMPS/$1"; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# fetch FILE URL SHA256: download into WORK/downloads (once) and verify.
fetch() {
    local file=$1 url=$2 want=$3 dest="$DOWNLOADS/$1"
    if [ -f "$dest" ] && [ "$(sha256_of "$dest")" = "$want" ]; then
        note "cached   $file"
        return
    fi
    note "download $url"
    rm -f "$dest.part"
    curl --fail --location --silent --show-error --retry 3 --connect-timeout 30 \
        -o "$dest.part" "$url" || die "could not download $url (the registries must be reachable)"
    local got
    got=$(sha256_of "$dest.part")
    if [ "$got" != "$want" ]; then
        rm -f "$dest.part"
        die "SHA-256 mismatch for $file: expected $want, got $got"
    fi
    mv "$dest.part" "$dest"
}

# unzip_to ZIP DIR: a wheel is a zip file; python3's zipfile module unpacks it (no unzip needed).
unzip_to() {
    "$HOST_PYTHON" -m zipfile -e "$1" "$2"
}

elapsed_since() { echo $(($(date +%s) - $1)); }

# hide_work_folder FILE...: writes the work folder as /vivarium-build in these text files (as
# -ffile-prefix-map does in the objects), so that the guest never learns where it was built.
hide_work_folder() {
    "$BUILD_PYTHON" - "$WORK" "$@" <<'PY'
import sys
work, paths = sys.argv[1], sys.argv[2:]
for path in paths:
    with open(path, encoding="utf-8") as source:
        text = source.read()
    with open(path, "w", encoding="utf-8") as target:
        target.write(text.replace(work, "/vivarium-build"))
PY
}

# ---------------------------------------------------------------------------------------------
# Arguments and layout.
# ---------------------------------------------------------------------------------------------
if [ $# -ne 2 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    usage
    [ $# -eq 1 ] && { [ "$1" = "-h" ] || [ "$1" = "--help" ]; } && exit 0
    exit 2
fi
mkdir -p "$1" "$2"
OUT=$(cd "$1" && pwd)
WORK=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHIM_C="$HERE/shim/vivarium_reactor.c"

DOWNLOADS="$WORK/downloads"
STAMPS="$WORK/stamps"
SRC="$WORK/src/Python-$PY_VERSION"
ZLIB_SRC="$WORK/src/zlib-$ZLIB_VERSION"
TOOLCHAIN="$WORK/toolchain"
ZIG="$TOOLCHAIN/zig-$ZIG_VERSION/ziglang/zig"
WASI_CC="$TOOLCHAIN/bin/wasm32-wasip1-cc"
WASI_CXX="$TOOLCHAIN/bin/wasm32-wasip1-c++"
WASI_AR="$TOOLCHAIN/bin/wasm32-wasip1-ar"
WASI_RANLIB="$TOOLCHAIN/bin/wasm32-wasip1-ranlib"
NATIVE_BUILD="$WORK/build-native"
BUILD_PYTHON="$NATIVE_BUILD/python"
ZLIB_PREFIX="$WORK/zlib-wasm32-wasip1"
SUPPORT_PREFIX="$WORK/support-wasm32-wasip1"
STUBS_C="$HERE/shim/wasi_netdb_stubs.c"
CXX_C="$HERE/shim/cxx_exceptions.c"
# The pandas profile's stand-ins for modules WASI cannot have (see their docstrings).
STANDIN_FILES=("$HERE/standins/ctypes/__init__.py" "$HERE/standins/mmap.py")
# The digest of this recipe, the C sources it links and the stand-ins (in this order),
# recorded in build-info.json so that a build made by another version of the recipe is not used.
RECIPE_SHA256=$(cat "${BASH_SOURCE[0]}" "$SHIM_C" "$STUBS_C" "$CXX_C" "${STANDIN_FILES[@]}" |
    sha256sum | cut -d' ' -f1)
NUMPY_SRC="$WORK/src/numpy-$NUMPY_VERSION"
NUMPY_BUILD="$WORK/build-numpy"
NUMPY_TOOLS="$TOOLCHAIN/numpy-tools"
PANDAS_SRC="$WORK/src/pandas-$PANDAS_VERSION"
PANDAS_BUILD="$WORK/build-pandas"
PANDAS_TOOLS="$TOOLCHAIN/pandas-tools"
WASI_BUILD="$WORK/build-wasm32-wasip1"
HOST_TRIPLE=wasm32-unknown-wasip1
mkdir -p "$DOWNLOADS" "$STAMPS" "$WORK/src" "$TOOLCHAIN/bin"

START=$(date +%s)
declare -A TIMES=()

# ---------------------------------------------------------------------------------------------
step "checking the prerequisites"
# ---------------------------------------------------------------------------------------------
missing=()
for tool in curl sha256sum tar xz make gcc; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
HOST_PYTHON=""
for candidate in python3 python3.13 python3.12 python3.11 python3.10 python3.9 python3.8; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys, zipfile; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
        HOST_PYTHON=$(command -v "$candidate")
        break
    fi
done
[ -n "$HOST_PYTHON" ] || missing+=("python3 (>= 3.8)")
[ -f "$SHIM_C" ] || missing+=("$SHIM_C")
[ -f "$STUBS_C" ] || missing+=("$STUBS_C")
[ -f "$CXX_C" ] || missing+=("$CXX_C")
for file in "${STANDIN_FILES[@]}"; do [ -f "$file" ] || missing+=("$file"); done
if [ ${#missing[@]} -gt 0 ]; then
    die "missing: ${missing[*]}"
fi
[ "$(uname -m)" = x86_64 ] || die "the pinned zig toolchain is for x86_64 Linux; this is $(uname -m)"
note "host python: $HOST_PYTHON; jobs: $JOBS; out: $OUT; work: $WORK"

# ---------------------------------------------------------------------------------------------
step "downloading the pinned sources and toolchain (cached in $DOWNLOADS)"
# ---------------------------------------------------------------------------------------------
fetch "$PY_FILE" "$PY_URL" "$PY_SHA256"
fetch "$ZLIB_FILE" "$ZLIB_URL" "$ZLIB_SHA256"
fetch "$ZIG_FILE" "$ZIG_URL" "$ZIG_SHA256"
fetch "$TZDATA_FILE" "$TZDATA_URL" "$TZDATA_SHA256"
fetch "$NUMPY_FILE" "$NUMPY_URL" "$NUMPY_SHA256"
fetch "$CYTHON_FILE" "$CYTHON_URL" "$CYTHON_SHA256"
fetch "$NINJA_FILE" "$NINJA_URL" "$NINJA_SHA256"
fetch "$PANDAS_FILE" "$PANDAS_URL" "$PANDAS_SHA256"
fetch "$MESON_FILE" "$MESON_URL" "$MESON_SHA256"
fetch "$DATEUTIL_FILE" "$DATEUTIL_URL" "$DATEUTIL_SHA256"

# ---------------------------------------------------------------------------------------------
step "unpacking the sources and the zig toolchain"
# ---------------------------------------------------------------------------------------------
if ! stamp_ok unpack-python "$PY_SHA256"; then
    rm -rf "$SRC" "$WORK/src/python.tmp"
    mkdir -p "$WORK/src/python.tmp"
    tar -xJf "$DOWNLOADS/$PY_FILE" -C "$WORK/src/python.tmp"
    mv "$WORK/src/python.tmp/Python-$PY_VERSION" "$SRC"
    rm -rf "$WORK/src/python.tmp"
    stamp_set unpack-python "$PY_SHA256"
fi
if ! stamp_ok unpack-zlib "$ZLIB_SHA256"; then
    rm -rf "$ZLIB_SRC" "$WORK/src/zlib.tmp"
    mkdir -p "$WORK/src/zlib.tmp"
    tar -xzf "$DOWNLOADS/$ZLIB_FILE" -C "$WORK/src/zlib.tmp"
    mv "$WORK/src/zlib.tmp"/zlib-* "$ZLIB_SRC"
    rm -rf "$WORK/src/zlib.tmp"
    stamp_set unpack-zlib "$ZLIB_SHA256"
fi
if ! stamp_ok unpack-zig "$ZIG_SHA256"; then
    rm -rf "$TOOLCHAIN/zig-$ZIG_VERSION"
    unzip_to "$DOWNLOADS/$ZIG_FILE" "$TOOLCHAIN/zig-$ZIG_VERSION"
    chmod +x "$ZIG"   # zip files do not keep the executable bit
    stamp_set unpack-zig "$ZIG_SHA256"
fi
# What WASI preview 1 lacks, met in numpy's sources: there is no dup(), which ndarray.tofile
# and numpy.fromfile use to hand a Python file to C stdio. np.save and np.load on a real
# file go through the file's own read and write instead (as they do for any file-like
# object), and tofile/fromfile on a file refuse with a message that says what to use.
NUMPY_PATCH=$(cat <<'PY'
import sys
root = sys.argv[1]
edits = [
    ("numpy/lib/_format_impl.py",
     "def isfileobj(f):\n",
     "def isfileobj(f):\n"
     "    # Vivarium: no dup() on WASI, so C stdio never takes over a Python file there.\n"
     "    if __import__('sys').platform == 'wasi':\n"
     "        return False\n"),
    ("numpy/_core/include/numpy/npy_3kcompat.h",
     "    /* Flush first to ensure things end up in the file in the correct order */\n",
     "#ifdef __wasi__\n"
     "    /* Vivarium: WASI has no dup(), which handing a Python file to C stdio needs. */\n"
     "    (void)file; (void)mode; (void)orig_pos;\n"
     "    PyErr_SetString(PyExc_OSError,\n"
     "        \"ndarray.tofile and numpy.fromfile cannot use a file in the sandbox (WASI has \"\n"
     "        \"no dup()); use np.save/np.load, or tobytes()/np.frombuffer with a file opened \"\n"
     "        \"in Python\");\n"
     "    return NULL;\n"
     "#endif\n"
     "    /* Flush first to ensure things end up in the file in the correct order */\n"),
]
for path, old, new in edits:
    full = f"{root}/{path}"
    text = open(full, encoding="utf-8").read()
    if text.count(old) != 1:
        sys.exit(f"{path}: the text to patch is not there exactly once")
    open(full, "w", encoding="utf-8").write(text.replace(old, new))
PY
)
NUMPY_UNPACK_KEY="$NUMPY_SHA256 $(printf '%s' "$NUMPY_PATCH" | sha256sum | cut -d' ' -f1)"
if ! stamp_ok unpack-numpy "$NUMPY_UNPACK_KEY"; then
    rm -rf "$NUMPY_SRC" "$WORK/src/numpy.tmp"
    mkdir -p "$WORK/src/numpy.tmp"
    tar -xzf "$DOWNLOADS/$NUMPY_FILE" -C "$WORK/src/numpy.tmp"
    "$HOST_PYTHON" -c "$NUMPY_PATCH" "$WORK/src/numpy.tmp/numpy-$NUMPY_VERSION" ||
        die "patching numpy's sources for WASI failed"
    mv "$WORK/src/numpy.tmp/numpy-$NUMPY_VERSION" "$NUMPY_SRC"
    rm -rf "$WORK/src/numpy.tmp"
    stamp_set unpack-numpy "$NUMPY_UNPACK_KEY"
fi
if ! stamp_ok unpack-numpy-tools "$CYTHON_SHA256 $NINJA_SHA256"; then
    rm -rf "$NUMPY_TOOLS"
    unzip_to "$DOWNLOADS/$CYTHON_FILE" "$NUMPY_TOOLS/cython"
    unzip_to "$DOWNLOADS/$NINJA_FILE" "$NUMPY_TOOLS/ninja"
    chmod +x "$NUMPY_TOOLS/ninja/ninja-$NINJA_VERSION.data/scripts/ninja"
    stamp_set unpack-numpy-tools "$CYTHON_SHA256 $NINJA_SHA256"
fi
if ! stamp_ok unpack-pandas "$PANDAS_SHA256"; then
    rm -rf "$PANDAS_SRC" "$WORK/src/pandas.tmp"
    mkdir -p "$WORK/src/pandas.tmp"
    tar -xzf "$DOWNLOADS/$PANDAS_FILE" -C "$WORK/src/pandas.tmp"
    mv "$WORK/src/pandas.tmp/pandas-$PANDAS_VERSION" "$PANDAS_SRC"
    rm -rf "$WORK/src/pandas.tmp"
    stamp_set unpack-pandas "$PANDAS_SHA256"
fi
if ! stamp_ok unpack-pandas-tools "$MESON_SHA256"; then
    rm -rf "$PANDAS_TOOLS"
    unzip_to "$DOWNLOADS/$MESON_FILE" "$PANDAS_TOOLS/meson"
    stamp_set unpack-pandas-tools "$MESON_SHA256"
fi
"$ZIG" version >/dev/null || die "the zig binary in $TOOLCHAIN does not run"

# Wrappers so that configure and make see one ordinary cross compiler, archiver and ranlib.
# - zig keeps its caches (including the wasi-libc it builds once) inside WORK.
# - -O2 by default (zig treats a compile without -O as a Debug build with UBSan traps);
#   a later -O flag on the command line wins.
# - zig's wasm-ld invocation always passes --stack-first itself and rejects the flag, so the
#   wrapper drops it.
# - source paths in the objects (__FILE__ in CPython's and libmpdec's checks) are written
#   relative to /vivarium-build, so the interpreter carries no path of the machine that built it.
# - zig makes __DATE__/__TIME__ an error (-Werror=date-time); CPython's getbuildinfo.c uses
#   them, so they are allowed and pinned by SOURCE_DATE_EPOCH (CPython's release date) for a
#   reproducible sys.version.
# write_zig_wrapper FILE DRIVER [FLAG...]: the wrapper of `zig DRIVER` (cc, c++) with FLAGs.
write_zig_wrapper() {
    local file=$1 driver=$2 extra=""
    shift 2
    [ $# -gt 0 ] && extra=" $*"
    cat >"$file" <<EOF
#!/usr/bin/env bash
# Generated by python-wasm/build.sh: zig $driver for wasm32-wasip1.
export ZIG_GLOBAL_CACHE_DIR="$TOOLCHAIN/zig-cache" ZIG_LOCAL_CACHE_DIR="$TOOLCHAIN/zig-cache"
export SOURCE_DATE_EPOCH=$PY_RELEASE_EPOCH
args=()
for a in "\$@"; do
    case "\$a" in
        -Wl,--stack-first) ;;
        *) args+=("\$a") ;;
    esac
done
exec "$ZIG" $driver -target wasm32-wasi -O2 -fno-sanitize=undefined -Wno-date-time$extra -ffile-prefix-map="$WORK"=/vivarium-build "\${args[@]}"
EOF
}
write_zig_wrapper "$WASI_CC" cc
# The same for C++ (numpy's sorting, linalg and fft code), with zig's libc++ for wasm32-wasi.
# CPython's pthread stubs spell C99's `restrict`, which C++ lacks.
write_zig_wrapper "$WASI_CXX" c++ -Drestrict=__restrict
cat >"$WASI_AR" <<EOF
#!/bin/sh
exec "$ZIG" ar "\$@"
EOF
cat >"$WASI_RANLIB" <<EOF
#!/bin/sh
exec "$ZIG" ranlib "\$@"
EOF
chmod +x "$WASI_CC" "$WASI_CXX" "$WASI_AR" "$WASI_RANLIB"
note "zig $("$ZIG" version) at $ZIG"

# ---------------------------------------------------------------------------------------------
step "native build-python $PY_VERSION (needed by the cross build)"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
NATIVE_KEY="$PY_SHA256 opt=$NATIVE_OPT --without-ensurepip --disable-test-modules"
if ! stamp_ok configure-native "$NATIVE_KEY"; then
    rm -rf "$NATIVE_BUILD"
    mkdir -p "$NATIVE_BUILD"
    (cd "$NATIVE_BUILD" && OPT="$NATIVE_OPT" "$SRC/configure" --quiet \
        --without-ensurepip --disable-test-modules >"$NATIVE_BUILD/configure.log" 2>&1) ||
        die "configuring the native build-python failed, see $NATIVE_BUILD/configure.log"
    stamp_set configure-native "$NATIVE_KEY"
fi
make -C "$NATIVE_BUILD" -j"$JOBS" -s >"$NATIVE_BUILD/make.log" 2>&1 ||
    die "building the native build-python failed, see $NATIVE_BUILD/make.log"
"$BUILD_PYTHON" -c "import sys; assert sys.version.startswith('$PY_VERSION'), sys.version" ||
    die "$BUILD_PYTHON is not CPython $PY_VERSION"
TIMES[native_build_python]=$(elapsed_since "$t0")
note "$("$BUILD_PYTHON" -VV | head -1) in ${TIMES[native_build_python]} s"

# ---------------------------------------------------------------------------------------------
step "zlib $ZLIB_VERSION and the netdb stubs for wasm32-wasip1"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
ZLIB_KEY="$ZLIB_SHA256 $ZIG_SHA256 cc=$(sha256_of "$WASI_CC") opt=$WASM_OPT"
if ! stamp_ok zlib "$ZLIB_KEY" || [ ! -f "$ZLIB_PREFIX/lib/libz.a" ]; then
    rm -rf "$ZLIB_PREFIX" "$WORK/zlib-obj"
    mkdir -p "$ZLIB_PREFIX/lib" "$ZLIB_PREFIX/include" "$WORK/zlib-obj"
    # zlib's own configure probes for shared libraries; the library is 15 plain C files, so
    # compile them directly (Z_HAVE_UNISTD_H: WASI has unistd.h, for the gz* functions).
    for c in adler32 compress crc32 deflate gzclose gzlib gzread gzwrite infback inffast \
        inflate inftrees trees uncompr zutil; do
        "$WASI_CC" $WASM_OPT -DZ_HAVE_UNISTD_H -D_LARGEFILE64_SOURCE=1 -I"$ZLIB_SRC" \
            -c "$ZLIB_SRC/$c.c" -o "$WORK/zlib-obj/$c.o" ||
            die "compiling zlib's $c.c failed"
    done
    "$WASI_AR" rcs "$ZLIB_PREFIX/lib/libz.a" "$WORK/zlib-obj"/*.o
    cp "$ZLIB_SRC/zlib.h" "$ZLIB_SRC/zconf.h" "$ZLIB_PREFIX/include/"
    stamp_set zlib "$ZLIB_KEY"
fi
# The name-service stubs (see the file's comment), a library configure and make link with.
STUBS_KEY="$(sha256_of "$STUBS_C") cc=$(sha256_of "$WASI_CC") opt=$WASM_OPT"
if ! stamp_ok netdb-stubs "$STUBS_KEY" || [ ! -f "$SUPPORT_PREFIX/lib/libvivarium_wasi_stubs.a" ]; then
    rm -rf "$SUPPORT_PREFIX"
    mkdir -p "$SUPPORT_PREFIX/lib"
    "$WASI_CC" $WASM_OPT -Wall -Wextra -Werror -c "$STUBS_C" -o "$SUPPORT_PREFIX/wasi_netdb_stubs.o" ||
        die "compiling $STUBS_C failed"
    "$WASI_AR" rcs "$SUPPORT_PREFIX/lib/libvivarium_wasi_stubs.a" "$SUPPORT_PREFIX/wasi_netdb_stubs.o"
    stamp_set netdb-stubs "$STUBS_KEY"
fi
TIMES[zlib]=$(elapsed_since "$t0")
note "libz.a: $(wc -c <"$ZLIB_PREFIX/lib/libz.a") bytes"

# ---------------------------------------------------------------------------------------------
step "configuring CPython $PY_VERSION for $HOST_TRIPLE"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
WASI_CONFIGURE_ARGS=(
    --host="$HOST_TRIPLE"
    --build="$(cd "$SRC" && ./config.guess)"
    --with-build-python="$BUILD_PYTHON"
    --prefix=/usr/local
    --disable-test-modules
    --without-ensurepip
    --without-system-libmpdec
    --without-system-expat
    --with-builtin-hashlib-hashes=md5,sha1,sha2,sha3,blake2
    # CPython turns its small-object allocator off on WASI by default, leaving every object
    # to wasi-libc's malloc (emmalloc in zig's build): a fifth of a call's time was spent
    # there. pymalloc's arenas come from malloc when there is no mmap, as here.
    --with-pymalloc
    # zig's headers for wasm32-wasi fall back to plain musl's <pthread.h>, whose declarations
    # clash with CPython's pthread stubs (Include/cpython/pthread_stubs.h); WASI has no threads.
    # (without the header the size check cannot see pthread_t: a pointer-sized type there)
    ac_cv_header_pthread_h=no
    ac_cv_sizeof_pthread_t=4
    # zig's headers are plain musl's where wasi-libc has none (sys/epoll.h, sys/timerfd.h,
    # libintl.h, setgroups), so configure's compile-only checks
    # find functions that wasi-libc does not define; the link would fail. Not on WASI:
    ac_cv_header_sys_epoll_h=no ac_cv_func_epoll_create=no ac_cv_func_epoll_create1=no
    ac_cv_header_sys_timerfd_h=no ac_cv_func_timerfd_create=no
    ac_cv_header_libintl_h=no
    ac_cv_func_setgroups=no
    # wasi-libc has mmap only as an opt-in emulation; without it pymalloc takes its arenas
    # from malloc.
    ac_cv_func_mmap=no
    # The netdb database functions (gethostbyname...) come from shim/wasi_netdb_stubs.c.
    LDFLAGS="-L$SUPPORT_PREFIX/lib" LIBS="-lvivarium_wasi_stubs"
)
# zig's wasi-libc has no getaddrinfo, so _socket compiles CPython's fallback getaddrinfo.c,
# which names SOCK_RAW; WASI defines only SOCK_STREAM and SOCK_DGRAM. Give it musl's value
# (it only ever reaches socket.SOCK_RAW). _socket is needed by email.utils, logging.handlers...
WASI_MAKE_VARS=(MODULE__SOCKET_CFLAGS=-DSOCK_RAW=3)
# configure is run through a relative path so that the source folder baked into the interpreter
# (getpath's VPATH) is relative too: the image carries no path of the machine that built it.
SRC_FROM_WASI_BUILD="../src/Python-$PY_VERSION"
WASI_KEY="srcdir=$SRC_FROM_WASI_BUILD $PY_SHA256 $ZLIB_KEY $STUBS_KEY opt=$WASM_OPT cc=$(sha256_of "$WASI_CC") ${WASI_CONFIGURE_ARGS[*]} ${WASI_MAKE_VARS[*]}"
if ! stamp_ok configure-wasi "$WASI_KEY"; then
    rm -rf "$WASI_BUILD"
    mkdir -p "$WASI_BUILD" "$WORK/empty-pkgconfig"
    (
        cd "$WASI_BUILD"
        # pkg-config must not find the build machine's libraries; zlib is given explicitly.
        export PKG_CONFIG_PATH="" PKG_CONFIG_LIBDIR="$WORK/empty-pkgconfig"
        export CONFIG_SITE="$SRC/Tools/wasm/config.site-wasm32-wasi"
        export CC="$WASI_CC" CPP="$WASI_CC -E" AR="$WASI_AR" RANLIB="$WASI_RANLIB"
        export OPT="$WASM_OPT"
        export ZLIB_CFLAGS="-I$ZLIB_PREFIX/include" ZLIB_LIBS="-L$ZLIB_PREFIX/lib -lz"
        "$SRC_FROM_WASI_BUILD/configure" "${WASI_CONFIGURE_ARGS[@]}" >"$WASI_BUILD/configure.log" 2>&1
    ) || die "configuring CPython for $HOST_TRIPLE failed, see $WASI_BUILD/configure.log"
    stamp_set configure-wasi "$WASI_KEY"
fi
TIMES[configure_wasm]=$(elapsed_since "$t0")

# ---------------------------------------------------------------------------------------------
step "building CPython for $HOST_TRIPLE (make -j$JOBS; python.wasm, libpython$PY_MM.a)"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
make -C "$WASI_BUILD" -j"$JOBS" "${WASI_MAKE_VARS[@]}" all >"$WASI_BUILD/make.log" 2>&1 ||
    die "building CPython for $HOST_TRIPLE failed, see $WASI_BUILD/make.log"
[ -f "$WASI_BUILD/python.wasm" ] && [ -f "$WASI_BUILD/libpython$PY_MM.a" ] ||
    die "make finished without python.wasm and libpython$PY_MM.a in $WASI_BUILD"
# Every module this project needs must be built in (statically); check_extension_modules
# lists what is missing or disabled.
REQUIRED_MODULES="zlib _decimal _json _datetime _sha2 _md5 _sha1 _sha3 _blake2 binascii _csv
    _statistics _zoneinfo _struct math _random _bisect _heapq itertools _collections
    _functools unicodedata _contextvars _pickle array"
SETUP_LOCAL="$WASI_BUILD/Modules/config.c"
for mod in $REQUIRED_MODULES; do
    grep -q "\"$mod\"" "$SETUP_LOCAL" || die "module $mod is not built in (see $WASI_BUILD/make.log)"
done
TIMES[make_wasm]=$(elapsed_since "$t0")
note "python.wasm: $(wc -c <"$WASI_BUILD/python.wasm") bytes; all required modules are built in"

# ---------------------------------------------------------------------------------------------
step "linking the reactor vivarium-python.wasm with the shim"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
# Ask the generated Makefile for the exact flags and libraries it links python.wasm with.
make_var() {
    make -s -C "$WASI_BUILD" -f Makefile -f - vivarium-print-var VAR="$1" <<'EOF'
vivarium-print-var:
	@echo $($(VAR))
EOF
}
# write_inittab FILE [MODULE...]: the C table of extension modules linked into a reactor
# besides CPython's own, which the shim registers before Python starts. MODULE is a path
# like numpy/_core/_multiarray_umath: the module numpy._core._multiarray_umath, whose init
# function is PyInit__multiarray_umath.
write_inittab() {
    local file=$1 module
    shift
    {
        echo "/* Generated by python-wasm/build.sh: extension modules linked into this reactor. */"
        echo "#include <Python.h>"
        for module in "$@"; do echo "PyMODINIT_FUNC PyInit_${module##*/}(void);"; done
        echo "struct _inittab vivarium_extra_inittab[] = {"
        for module in "$@"; do echo "    {\"${module//\//.}\", PyInit_${module##*/}},"; done
        echo "    {NULL, NULL},"
        echo "};"
    } >"$file"
}

# The shim is an embedding application: public API only, so not PY_CORE_CFLAGS.
PY_CFLAGS="$(make_var PY_CFLAGS) $(make_var PY_CPPFLAGS)"
LINK_FLAGS="$(make_var PY_CORE_LDFLAGS) $(make_var LINKFORSHARED)"
LINK_LIBS="$(make_var LIBS) $(make_var MODLIBS) $(make_var SYSLIBS)"
REACTOR_FLAGS="-mexec-model=reactor -z stack-size=$WASM_STACK -Wl,--initial-memory=$WASM_INITIAL_MEMORY"
LINK_KEY="$WASI_KEY $(sha256_of "$SHIM_C") $(sha256_of "$WASI_BUILD/libpython$PY_MM.a") $REACTOR_FLAGS"
if ! stamp_ok link-reactor "$LINK_KEY" || [ ! -f "$WASI_BUILD/vivarium-python.wasm" ]; then
    (
        cd "$WASI_BUILD"
        # shellcheck disable=SC2086 # the flag strings are lists of words
        "$WASI_CC" $PY_CFLAGS -Wall -Wextra -Werror -c "$SHIM_C" -o vivarium_reactor.o
        write_inittab vivarium_inittab.c
        # shellcheck disable=SC2086
        "$WASI_CC" $PY_CFLAGS -Wall -Wextra -Werror -c vivarium_inittab.c -o vivarium_inittab.o
        # shellcheck disable=SC2086
        "$WASI_CC" $LINK_FLAGS $REACTOR_FLAGS -o vivarium-python.wasm vivarium_reactor.o \
            vivarium_inittab.o "libpython$PY_MM.a" $LINK_LIBS
    ) >"$WASI_BUILD/link-reactor.log" 2>&1 ||
        die "compiling or linking the reactor failed, see $WASI_BUILD/link-reactor.log"
    stamp_set link-reactor "$LINK_KEY"
fi
# A small wasm reader (run by the build-python): `exports FILE` prints the exports with their
# types as JSON; `strip-debug IN OUT` drops the DWARF custom sections (.debug_*) and keeps the
# `name` section, so traps still show function names.
WASM_TOOL="$WORK/wasm_tool.py"
cat >"$WASM_TOOL" <<'EOF'
import json, sys

def leb(data, i):
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i

def sections(data):
    assert data[:8] == b"\0asm\1\0\0\0", "not a wasm module"
    i = 8
    while i < len(data):
        start, section = i, data[i]
        size, i = leb(data, i + 1)
        yield section, data[i:i + size], data[start:i + size]
        i += size

VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}

def exports(data):
    types, funcs, imported, out = [], [], 0, []
    import_modules = set()
    for section, body, _ in sections(data):
        if section == 1:  # types: 0x60 params results
            count, j = leb(body, 0)
            for _ in range(count):
                assert body[j] == 0x60, "unsupported type form"
                n, j = leb(body, j + 1)
                params = [VALTYPES.get(b, hex(b)) for b in body[j:j + n]]
                m, j = leb(body, j + n)
                results = [VALTYPES.get(b, hex(b)) for b in body[j:j + m]]
                j += m
                types.append((params, results))
        elif section == 2:  # imports: their modules; count the functions
            count, j = leb(body, 0)
            for _ in range(count):
                n, j = leb(body, j)
                import_modules.add(body[j:j + n].decode())
                j += n
                n, j = leb(body, j)
                j += n
                kind = body[j]
                j += 1
                if kind == 0:
                    imported += 1
                    _, j = leb(body, j)
                elif kind == 1:
                    j += 1
                    flags, j = leb(body, j)
                    _, j = leb(body, j)
                    if flags & 1:
                        _, j = leb(body, j)
                elif kind == 2:
                    flags, j = leb(body, j)
                    _, j = leb(body, j)
                    if flags & 1:
                        _, j = leb(body, j)
                else:
                    j += 2
        elif section == 3:
            count, j = leb(body, 0)
            for _ in range(count):
                t, j = leb(body, j)
                funcs.append(t)
        elif section == 7:
            count, j = leb(body, 0)
            for _ in range(count):
                n, j = leb(body, j)
                name = body[j:j + n].decode()
                kind = body[j + n]
                index, j = leb(body, j + n + 1)
                if kind == 0:
                    params, results = types[funcs[index - imported]]
                    out.append({"name": name, "kind": "func", "params": params, "results": results})
                else:
                    out.append({"name": name, "kind": {1: "table", 2: "memory", 3: "global"}[kind]})
    return {"exports": out, "import_modules": sorted(import_modules)}

def strip_debug(data):
    kept = [data[:8]]
    for section, body, raw in sections(data):
        if section == 0:
            n, j = leb(body, 0)
            if body[j:j + n].startswith(b".debug_"):
                continue
        kept.append(raw)
    return b"".join(kept)

if sys.argv[1] == "exports":
    print(json.dumps(exports(open(sys.argv[2], "rb").read())))
elif sys.argv[1] == "strip-debug":
    open(sys.argv[3], "wb").write(strip_debug(open(sys.argv[2], "rb").read()))
EOF
# check_reactor FILE VAR: checks FILE's shape (these exports, and no _start), prints them, and
# sets VAR to its exports and import modules as JSON.
check_reactor() {
    local shape
    shape=$("$BUILD_PYTHON" "$WASM_TOOL" exports "$1") || die "cannot read the exports of $1"
    "$BUILD_PYTHON" - "$shape" <<'EOF' || die "$1 does not have the expected exports"
import json, sys
shape = json.loads(sys.argv[1])
exports = {e["name"]: e for e in shape["exports"]}
for e in exports.values():
    sig = "(%s) -> (%s)" % (", ".join(e["params"]), ", ".join(e["results"])) if e["kind"] == "func" else ""
    print("    export %-20s %s %s" % (e["name"], e["kind"], sig))
want = {"_initialize": ([], []), "vivarium_init": ([], ["i32"]), "vivarium_run": ([], ["i32"]),
        "vivarium_reply_json": ([], ["i32"])}
ok = "_start" not in exports and exports.get("memory", {}).get("kind") == "memory"
for name, (params, results) in want.items():
    e = exports.get(name, {})
    ok = ok and e.get("params") == params and e.get("results") == results
print("    imports from: " + ", ".join(shape["import_modules"]))
sys.exit(0 if ok else 1)
EOF
    printf -v "$2" '%s' "$shape"
}
check_reactor "$WASI_BUILD/vivarium-python.wasm" REACTOR_EXPORTS
TIMES[link_reactor]=$(elapsed_since "$t0")

# ---------------------------------------------------------------------------------------------
step "numpy $NUMPY_VERSION for $HOST_TRIPLE (its meson, Cython $CYTHON_VERSION, ninja $NINJA_VERSION)"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
mkdir -p "$NUMPY_TOOLS/bin"
ln -sf "$NUMPY_TOOLS/ninja/ninja-$NINJA_VERSION.data/scripts/ninja" "$NUMPY_TOOLS/bin/ninja"
cat >"$NUMPY_TOOLS/bin/cython" <<EOF
#!/bin/sh
# Generated by python-wasm/build.sh: Cython from its wheel, run by the build-python.
PYTHONPATH="$NUMPY_TOOLS/cython" exec "$BUILD_PYTHON" -m cython "\$@"
EOF
# meson's python dependency asks pkg-config first: this one knows only the wasm build's
# headers, so the build-python's own (a 64-bit pyconfig.h) are never seen.
cat >"$NUMPY_TOOLS/bin/pkg-config" <<EOF
#!/bin/sh
# Generated by python-wasm/build.sh: pkg-config for python-$PY_MM of the wasm32-wasip1 build only.
case "\$1" in --version) echo 0.29.2; exit 0 ;; esac
known=0
for a in "\$@"; do case "\$a" in python-$PY_MM | python-$PY_MM-embed) known=1 ;; esac; done
[ \$known = 1 ] || exit 1
for a in "\$@"; do
    case "\$a" in
        --modversion) echo $PY_VERSION ;;
        --cflags) echo "-I$SRC/Include -I$WASI_BUILD" ;;
        --libs | --variable=*) echo ;;
    esac
done
EOF
# The compiler meson builds numpy with (as cc, and as c++ for the C++ sources). A link with
# -shared (an extension module) makes a static archive of its objects instead, and lists the
# static libraries it names in FILE.libs, for the numpy reactor's link. A compile with
# -DNP_RANDOM_LEGACY=1 (numpy.random.mtrand's) force-includes a header renaming its copies of
# the distributions: built with `long` for RAND_INT_TYPE, they differ from the ones numpy's
# other random modules link, and one static link holds both.
cat >"$NUMPY_TOOLS/bin/cc" <<EOF
#!/usr/bin/env bash
# Generated by python-wasm/build.sh: numpy's compiler, see the recipe.
compiler="$WASI_CC"
[ "\$(basename "\$0")" = c++ ] && compiler="$WASI_CXX"
shared=0 legacy=0 out="" previous="" objects=() libraries=()
for a in "\$@"; do
    case "\$a" in
        -shared) shared=1 ;;
        -DNP_RANDOM_LEGACY=1) legacy=1 ;;
        *.o) objects+=("\$a") ;;
        *.a) libraries+=("\$(realpath "\$a")") ;;
    esac
    [ "\$previous" = -o ] && out=\$a
    previous=\$a
done
if [ \$shared = 1 ]; then
    rm -f "\$out"
    "$WASI_AR" rcs "\$out" "\${objects[@]}" || exit 1
    printf '%s\n' "\${libraries[@]}" >"\$out.libs"
    exit 0
fi
[ \$legacy = 1 ] && exec "\$compiler" -include "$NUMPY_TOOLS/legacy_distributions.h" "\$@"
exec "\$compiler" "\$@"
EOF
ln -sf cc "$NUMPY_TOOLS/bin/c++"
chmod +x "$NUMPY_TOOLS/bin/cython" "$NUMPY_TOOLS/bin/pkg-config" "$NUMPY_TOOLS/bin/cc"
# write_rename_header HEADER PREFIX WHAT MIN SOURCE... [-- OTHER...]: a header renaming every
# function the SOURCEs define (not static) to PREFIX_name, or only those the OTHER sources
# define too, to be force-included where they are compiled and called, so that a second copy
# of them links beside the first; it must rename MIN at least.
write_rename_header() {
    local header=$1 prefix=$2 what=$3 min=$4
    shift 4
    "$BUILD_PYTHON" - "$header" "$prefix" "$what" "$@" <<'EOF'
import re, sys
header, prefix, what, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
sources, _, others = (files[:files.index("--")], None, files[files.index("--") + 1:]) if "--" in files else (files, None, [])

def defined_in(paths):
    names = set()
    for path in paths:
        source = open(path).read()
        names |= set(re.findall(r"^(?!static\b)[A-Za-z_][\w ]*?[\s*]+(\w+)\s*\([^;]*?\)\s*\{", source, re.M))
    return names

defined = defined_in(sources)
if others:
    defined &= defined_in(others)
with open(header, "w") as out:
    out.write(f"/* Generated by python-wasm/build.sh: {what}. */\n")
    for name in sorted(defined):
        out.write(f"#define {name} {prefix}_{name}\n")
EOF
    [ "$(grep -c '^#define' "$header")" -ge "$min" ] || die "found too few functions to rename for $header"
}
# The functions numpy/random/src/distributions/distributions.c defines, renamed in mtrand.
write_rename_header "$NUMPY_TOOLS/legacy_distributions.h" vivarium_legacy \
    "mtrand's own copies of the distributions" 50 \
    "$NUMPY_SRC/numpy/random/src/distributions/distributions.c"
# write_cross_file FILE PROJECT CYTHON [BIN]: meson's cross file for PROJECT on wasm32-wasip1,
# with the given Cython and the compiler wrappers cc and c++ in BIN (numpy's by default).
write_cross_file() {
    cat >"$1" <<EOF
# Generated by python-wasm/build.sh: meson's cross file for $2 on wasm32-wasip1.
[binaries]
c = '${4:-$NUMPY_TOOLS/bin}/cc'
cpp = '${4:-$NUMPY_TOOLS/bin}/c++'
ar = '$WASI_AR'
ranlib = '$WASI_RANLIB'
python = '$BUILD_PYTHON'
cython = '$3'
pkg-config = '$NUMPY_TOOLS/bin/pkg-config'

[host_machine]
system = 'wasi'
cpu_family = 'wasm32'
cpu = 'wasm32'
endian = 'little'

[properties]
needs_exe_wrapper = true
longdouble_format = 'IEEE_QUAD_LE'
EOF
}
write_cross_file "$WORK/numpy-cross.ini" numpy "$NUMPY_TOOLS/bin/cython"
NUMPY_KEY="$NUMPY_UNPACK_KEY $CYTHON_SHA256 $NINJA_SHA256 $WASI_KEY $(cat "$NUMPY_TOOLS/bin/cc" "$NUMPY_TOOLS/bin/pkg-config" "$NUMPY_TOOLS/legacy_distributions.h" "$WORK/numpy-cross.ini" "$WASI_CXX" | sha256sum | cut -d' ' -f1) $NUMPY_MESON_OPTIONS"
if ! stamp_ok configure-numpy "$NUMPY_KEY"; then
    rm -rf "$NUMPY_BUILD"
    # shellcheck disable=SC2086 # the options are a list of words
    (cd "$NUMPY_SRC" && PATH="$NUMPY_TOOLS/bin:$PATH" "$BUILD_PYTHON" vendored-meson/meson/meson.py \
        setup "$NUMPY_BUILD" --cross-file "$WORK/numpy-cross.ini" $NUMPY_MESON_OPTIONS \
        >"$WORK/numpy-configure.log" 2>&1) ||
        die "configuring numpy failed, see $WORK/numpy-configure.log"
    stamp_set configure-numpy "$NUMPY_KEY"
fi
PATH="$NUMPY_TOOLS/bin:$PATH" ninja -C "$NUMPY_BUILD" -j"$JOBS" >"$WORK/numpy-build.log" 2>&1 ||
    die "building numpy failed, see $WORK/numpy-build.log"
# numpy's Python files as meson installs them (with its generated ones), without the archives
# that stand in for its extension modules.
NUMPY_STAGE="$WORK/numpy-install"
rm -rf "$NUMPY_STAGE"
(cd "$NUMPY_SRC" && PATH="$NUMPY_TOOLS/bin:$PATH" "$BUILD_PYTHON" vendored-meson/meson/meson.py \
    install -C "$NUMPY_BUILD" --no-rebuild --destdir "$NUMPY_STAGE" >"$WORK/numpy-install.log" 2>&1) ||
    die "staging numpy's files failed, see $WORK/numpy-install.log"
NUMPY_PACKAGE=$(find "$NUMPY_STAGE" -type d -path "*/site-packages/numpy" | head -1)
[ -n "$NUMPY_PACKAGE" ] || die "meson installed no numpy package under $NUMPY_STAGE"
find "$NUMPY_PACKAGE" \( -name "*.so" -o -name "*.so.libs" -o -name "*.a" \) -delete
find "$NUMPY_PACKAGE" -name __pycache__ -type d -prune -exec rm -rf {} +
# numpy.show_config() reports the compilers and Python it was built with.
hide_work_folder "$NUMPY_PACKAGE/__config__.py"
TIMES[numpy]=$(elapsed_since "$t0")
note "numpy $NUMPY_VERSION: $(echo $NUMPY_MODULES | wc -w) extension modules built as archives"

# ---------------------------------------------------------------------------------------------
step "linking the numpy reactor vivarium-python-numpy.wasm"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
# meson names the modules with the build-python's suffix (it runs meson); they are archives.
module_suffix=$("$BUILD_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
# add_archives BUILD MODULE...: adds the archive meson made in BUILD for each MODULE to
# LINK_ARCHIVES, and the static libraries it names to LINK_LIBRARIES (once each). meson
# makes a module in the folder of the meson.build declaring it, which for pandas' Cython
# utility module is the root of the build.
add_archives() {
    local build=$1 module archive library
    shift
    for module in "$@"; do
        archive="$build/$module$module_suffix"
        [ -f "$archive" ] || archive="$build/${module##*/}$module_suffix"
        [ -f "$archive" ] || die "the build in $build made no archive for $module"
        LINK_ARCHIVES+=("$archive")
        while read -r library; do
            [ -n "$library" ] && LINK_LIBRARIES+=("$library")
        done <"$archive.libs"
    done
    mapfile -t LINK_LIBRARIES < <(printf '%s\n' "${LINK_LIBRARIES[@]}" | awk 'NF && !seen[$0]++')
}
# link_extension_reactor NAME KEY MODULE...: links vivarium-python-NAME.wasm in the CPython
# build, with MODULEs' archives (in LINK_ARCHIVES and LINK_LIBRARIES) registered by its
# inittab, unless the one there was linked from the same KEY.
link_extension_reactor() {
    local name=$1 key=$2 reactor="vivarium-python-$1.wasm"
    shift 2
    stamp_ok "link-$name-reactor" "$key" && [ -f "$WASI_BUILD/$reactor" ] && return 0
    (
        cd "$WASI_BUILD"
        write_inittab "vivarium_inittab_$name.c" "$@"
        # shellcheck disable=SC2086 # the flag strings are lists of words
        "$WASI_CC" $PY_CFLAGS -Wall -Wextra -Werror -c "vivarium_inittab_$name.c" \
            -o "vivarium_inittab_$name.o"
        # shellcheck disable=SC2086
        "$WASI_CC" $WASM_OPT -Wall -Wextra -Werror -c "$CXX_C" -o cxx_exceptions.o
        # C++ objects inside: linked by zig c++, which adds its libc++ and libc++abi.
        # shellcheck disable=SC2086
        "$WASI_CXX" $LINK_FLAGS $REACTOR_FLAGS -o "$reactor" vivarium_reactor.o \
            "vivarium_inittab_$name.o" cxx_exceptions.o "${LINK_ARCHIVES[@]}" \
            "${LINK_LIBRARIES[@]}" "libpython$PY_MM.a" $LINK_LIBS
    ) >"$WASI_BUILD/link-$name-reactor.log" 2>&1 ||
        die "linking the $name reactor failed, see $WASI_BUILD/link-$name-reactor.log"
    stamp_set "link-$name-reactor" "$key"
}
LINK_ARCHIVES=() LINK_LIBRARIES=()
# shellcheck disable=SC2086 # NUMPY_MODULES is a list of words
add_archives "$NUMPY_BUILD" $NUMPY_MODULES
NUMPY_LINK_KEY="$LINK_KEY $NUMPY_KEY $(sha256_of "$CXX_C") $NUMPY_MODULES"
# shellcheck disable=SC2086
link_extension_reactor numpy "$NUMPY_LINK_KEY" $NUMPY_MODULES
check_reactor "$WASI_BUILD/vivarium-python-numpy.wasm" NUMPY_REACTOR_EXPORTS
TIMES[link_numpy_reactor]=$(elapsed_since "$t0")

# ---------------------------------------------------------------------------------------------
step "pandas $PANDAS_VERSION for $HOST_TRIPLE (meson $MESON_VERSION, Cython $CYTHON_VERSION, against numpy $NUMPY_VERSION)"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
# What pandas' build asks of numpy, which the build-python cannot import (its extension
# modules are wasm archives): numpy.get_include(), answered with the wasm numpy's headers,
# and numpy's Cython declarations for `cimport numpy`. pandas' generate_version.py imports
# versioneer, which is never called: the sdist carries its version in _version_meson.py.
PANDAS_BUILD_PATH="$PANDAS_TOOLS/build-path"
rm -rf "$PANDAS_BUILD_PATH"
mkdir -p "$PANDAS_BUILD_PATH/numpy" "$PANDAS_TOOLS/bin"
cat >"$PANDAS_BUILD_PATH/numpy/__init__.py" <<EOF
"""Generated by python-wasm/build.sh: the wasm numpy's headers, for pandas' build only."""
__version__ = "$NUMPY_VERSION"


def get_include():
    return "$NUMPY_PACKAGE/_core/include"
EOF
# (with their times kept, so that a rerun does not make every Cython module look out of date)
cp -p "$NUMPY_PACKAGE"/__init__*.pxd "$PANDAS_BUILD_PATH/numpy/"
echo '"""Generated by python-wasm/build.sh: pandas imports versioneer, and never uses it here."""' \
    >"$PANDAS_BUILD_PATH/versioneer.py"
# Cython (and its Tempita, which pandas' generate_pxi.py uses) and meson, for every tool the
# build runs; the numpy above for them too, but never for the cross build's own Python.
PANDAS_PYTHONPATH="$NUMPY_TOOLS/cython:$PANDAS_TOOLS/meson:$PANDAS_BUILD_PATH"
cat >"$PANDAS_TOOLS/bin/cython" <<EOF
#!/bin/sh
# Generated by python-wasm/build.sh: Cython for pandas, seeing the wasm numpy's declarations.
PYTHONPATH="$PANDAS_PYTHONPATH" exec "$BUILD_PYTHON" -m cython "\$@"
EOF
chmod +x "$PANDAS_TOOLS/bin/cython"
# pandas vendors numpy's datetime code: the functions numpy defines too are renamed in
# pandas' copies, in the C files of its datetime module (which define and call them; the other
# modules reach them through the module's capsule, whose macros take these names).
PANDAS_VENDORED="$PANDAS_SRC/pandas/_libs/src/vendored/numpy/datetime"
write_rename_header "$PANDAS_TOOLS/vendored_numpy.h" vivarium_pandas \
    "pandas' own copies of numpy's datetime functions" 3 "$PANDAS_VENDORED"/*.c -- \
    "$NUMPY_SRC"/numpy/_core/src/multiarray/*.c
cat >"$PANDAS_TOOLS/bin/cc" <<EOF
#!/usr/bin/env bash
# Generated by python-wasm/build.sh: pandas' compiler, numpy's with the renaming header
# force-included in the C files of pandas' datetime module.
compiler="$NUMPY_TOOLS/bin/\$(basename "\$0")"
for a in "\$@"; do
    case "\$a" in
        */_libs/src/vendored/numpy/datetime/*.c | */_libs/src/datetime/*.c)
            exec "\$compiler" -include "$PANDAS_TOOLS/vendored_numpy.h" "\$@" ;;
    esac
done
exec "\$compiler" "\$@"
EOF
chmod +x "$PANDAS_TOOLS/bin/cc"
ln -sf cc "$PANDAS_TOOLS/bin/c++"
write_cross_file "$WORK/pandas-cross.ini" pandas "$PANDAS_TOOLS/bin/cython" "$PANDAS_TOOLS/bin"
PANDAS_KEY="$PANDAS_SHA256 $MESON_SHA256 $NUMPY_KEY $(cat "$WORK/pandas-cross.ini" \
    "$PANDAS_TOOLS/bin/cython" "$PANDAS_TOOLS/bin/cc" "$PANDAS_BUILD_PATH/numpy/__init__.py" "$PANDAS_TOOLS/vendored_numpy.h" |
    sha256sum | cut -d' ' -f1) $PANDAS_MESON_OPTIONS"
# meson runs Cython as a tool of the build machine, found on PATH: pandas' comes first.
PANDAS_PATH="$PANDAS_TOOLS/bin:$NUMPY_TOOLS/bin:$PATH"
pandas_meson() {
    (cd "$PANDAS_SRC" && PATH="$PANDAS_PATH" PYTHONPATH="$PANDAS_PYTHONPATH" \
        "$BUILD_PYTHON" -m mesonbuild.mesonmain "$@")
}
if ! stamp_ok configure-pandas "$PANDAS_KEY"; then
    rm -rf "$PANDAS_BUILD"
    # shellcheck disable=SC2086 # the options are a list of words
    pandas_meson setup "$PANDAS_BUILD" --cross-file "$WORK/pandas-cross.ini" $PANDAS_MESON_OPTIONS \
        >"$WORK/pandas-configure.log" 2>&1 || die "configuring pandas failed, see $WORK/pandas-configure.log"
    stamp_set configure-pandas "$PANDAS_KEY"
fi
PATH="$PANDAS_PATH" PYTHONPATH="$PANDAS_PYTHONPATH" ninja -C "$PANDAS_BUILD" -j"$JOBS" \
    >"$WORK/pandas-build.log" 2>&1 || die "building pandas failed, see $WORK/pandas-build.log"
# pandas' Python files as meson installs them, without the archives standing in for its modules.
PANDAS_STAGE="$WORK/pandas-install"
rm -rf "$PANDAS_STAGE"
pandas_meson install -C "$PANDAS_BUILD" --no-rebuild --destdir "$PANDAS_STAGE" \
    >"$WORK/pandas-install.log" 2>&1 || die "staging pandas' files failed, see $WORK/pandas-install.log"
PANDAS_PACKAGE=$(find "$PANDAS_STAGE" -type d -path "*/site-packages/pandas" | head -1)
[ -n "$PANDAS_PACKAGE" ] || die "meson installed no pandas package under $PANDAS_STAGE"
find "$PANDAS_PACKAGE" \( -name "*.so" -o -name "*.so.libs" -o -name "*.a" \) -delete
find "$PANDAS_PACKAGE" -name __pycache__ -type d -prune -exec rm -rf {} +
TIMES[pandas]=$(elapsed_since "$t0")
note "pandas $PANDAS_VERSION: $(echo $PANDAS_MODULES | wc -w) extension modules built as archives"

# ---------------------------------------------------------------------------------------------
step "linking the pandas reactor vivarium-python-pandas.wasm (numpy's modules and pandas')"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
# shellcheck disable=SC2086 # PANDAS_MODULES is a list of words
add_archives "$PANDAS_BUILD" $PANDAS_MODULES
PANDAS_LINK_KEY="$NUMPY_LINK_KEY $PANDAS_KEY $PANDAS_MODULES"
# shellcheck disable=SC2086
link_extension_reactor pandas "$PANDAS_LINK_KEY" $NUMPY_MODULES $PANDAS_MODULES
check_reactor "$WASI_BUILD/vivarium-python-pandas.wasm" PANDAS_REACTOR_EXPORTS
TIMES[link_pandas_reactor]=$(elapsed_since "$t0")

# ---------------------------------------------------------------------------------------------
step "assembling $OUT (modules, byte-compiled stdlib, tzdata, test package, build-info.json)"
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
STAGE="$WORK/out.staging"
rm -rf "$STAGE"
mkdir -p "$STAGE/lib/python$PY_MM"
LIBDEST="$STAGE/lib/python$PY_MM"
excludes=()
for name in $STDLIB_EXCLUDE; do
    excludes+=(--exclude="./$name")
done
excludes+=(--exclude=__pycache__ --exclude="*.pyc")
tar -C "$SRC/Lib" "${excludes[@]}" -cf - . | tar -C "$LIBDEST" -xf -
# The generated sysconfig data of the wasm build (what `sysconfig` reads on the guest).
cp "$WASI_BUILD"/build/lib.wasi-wasm32-"$PY_MM"/_sysconfigdata_*.py "$LIBDEST/"
# ...with the build machine's work folder written as /vivarium-build, as in the objects: the
# guest (and the snapshot, which imports it) must not learn where the interpreter was built.
hide_work_folder "$LIBDEST"/_sysconfigdata_*.py
# An empty lib-dynload, as an installed CPython has (getpath looks for it: python.wasm warns
# "Could not find platform dependent libraries" without it). Nothing is loaded from it.
mkdir -p "$LIBDEST/lib-dynload"
# tzdata from its wheel: the package and its metadata go on the default path.
unzip_to "$DOWNLOADS/$TZDATA_FILE" "$LIBDEST"
# numpy's Python files (with its tests, for the conformance runs): importable from both
# reactors, working only in the numpy one, which has its extension modules built in.
cp -R "$NUMPY_PACKAGE" "$LIBDEST/numpy"
# pandas' likewise (working only in the pandas reactor), and python-dateutil.
cp -R "$PANDAS_PACKAGE" "$LIBDEST/pandas"
unzip_to "$DOWNLOADS/$DATEUTIL_FILE" "$LIBDEST"
# The pandas profile's stand-ins, in a folder only that profile puts on its path (a name with
# a dash, so that nothing imports it as a package).
STANDINS_FOLDER=vivarium-standins
mkdir -p "$LIBDEST/$STANDINS_FOLDER"
cp -R "$HERE/standins/." "$LIBDEST/$STANDINS_FOLDER/"
# Byte-compile with the build-python (same version, same magic number). unchecked-hash .pycs are
# used without looking at the source's mtime, which the sandbox does not preserve.
"$BUILD_PYTHON" -m compileall -q -j"$JOBS" --invalidation-mode unchecked-hash \
    -d "/usr/local/lib/python$PY_MM" "$LIBDEST" >"$WORK/compileall.log" 2>&1 ||
    die "byte-compiling the standard library failed, see $WORK/compileall.log"
# CPython's own regression tests (kept as sources: several are meant not to compile).
mkdir -p "$STAGE/test"
tar -C "$SRC/Lib/test" --exclude=__pycache__ -cf - . | tar -C "$STAGE/test" -xf -
# The modules without DWARF (zig's wasi-libc carries some), with their `name` sections.
"$BUILD_PYTHON" "$WASM_TOOL" strip-debug "$WASI_BUILD/python.wasm" "$STAGE/python.wasm"
"$BUILD_PYTHON" "$WASM_TOOL" strip-debug "$WASI_BUILD/vivarium-python.wasm" "$STAGE/vivarium-python.wasm"
for reactor in numpy pandas; do
    "$BUILD_PYTHON" "$WASM_TOOL" strip-debug "$WASI_BUILD/vivarium-python-$reactor.wasm" \
        "$STAGE/vivarium-python-$reactor.wasm"
done

TOTAL_SECONDS=$(elapsed_since "$START")
REACTOR_SHA256=$(sha256_of "$STAGE/vivarium-python.wasm")
COMMAND_SHA256=$(sha256_of "$STAGE/python.wasm")
NUMPY_REACTOR_SHA256=$(sha256_of "$STAGE/vivarium-python-numpy.wasm")
PANDAS_REACTOR_SHA256=$(sha256_of "$STAGE/vivarium-python-pandas.wasm")
"$BUILD_PYTHON" - "$STAGE/build-info.json" "$REACTOR_EXPORTS" "$WASI_BUILD/Modules/config.c" \
    "$NUMPY_REACTOR_EXPORTS" "$PANDAS_REACTOR_EXPORTS" <<EOF
import json, re, sys
builtin = sorted(set(re.findall(r'\{"(\w+)", PyInit_', open(sys.argv[3]).read())))
info = {
    "cpython_version": "$PY_VERSION",
    "recipe_sha256": "$RECIPE_SHA256",
    "target": "$HOST_TRIPLE",
    "toolchain": {
        "name": "zig cc (clang/LLVM + wasm-ld + wasi-libc, from the ziglang wheel)",
        "zig_version": "$("$ZIG" version)",
        "clang_version": """$("$ZIG" cc --version 2>/dev/null | head -1)""".strip(),
        "cflags_opt": "$WASM_OPT",
        "reactor_link_flags": "$REACTOR_FLAGS",
        "stack_size": $WASM_STACK,
        "initial_memory": $WASM_INITIAL_MEMORY,
    },
    "configure_args": """${WASI_CONFIGURE_ARGS[*]}""".split(),
    "pins": {
        "python": {"version": "$PY_VERSION", "url": "$PY_URL", "sha256": "$PY_SHA256"},
        "zlib": {"version": "$ZLIB_VERSION", "url": "$ZLIB_URL", "sha256": "$ZLIB_SHA256"},
        "ziglang": {"version": "$ZIG_VERSION", "url": "$ZIG_URL", "sha256": "$ZIG_SHA256"},
        "tzdata": {"version": "$TZDATA_VERSION", "url": "$TZDATA_URL", "sha256": "$TZDATA_SHA256"},
        "numpy": {"version": "$NUMPY_VERSION", "url": "$NUMPY_URL", "sha256": "$NUMPY_SHA256"},
        "cython": {"version": "$CYTHON_VERSION", "url": "$CYTHON_URL", "sha256": "$CYTHON_SHA256"},
        "ninja": {"version": "$NINJA_VERSION", "url": "$NINJA_URL", "sha256": "$NINJA_SHA256"},
        "pandas": {"version": "$PANDAS_VERSION", "url": "$PANDAS_URL", "sha256": "$PANDAS_SHA256"},
        "meson": {"version": "$MESON_VERSION", "url": "$MESON_URL", "sha256": "$MESON_SHA256"},
        "python-dateutil": {"version": "$DATEUTIL_VERSION", "url": "$DATEUTIL_URL",
                            "sha256": "$DATEUTIL_SHA256"},
    },
    "numpy": {
        "version": "$NUMPY_VERSION",
        "meson_options": """$NUMPY_MESON_OPTIONS""".split(),
        "extension_modules": [m.replace("/", ".") for m in """$NUMPY_MODULES""".split()],
        "reactor": "vivarium-python-numpy.wasm",
    },
    "pandas": {
        "version": "$PANDAS_VERSION",
        "meson_options": """$PANDAS_MESON_OPTIONS""".split(),
        "extension_modules": [m.replace("/", ".") for m in """$PANDAS_MODULES""".split()],
        "reactor": "vivarium-python-pandas.wasm",
        "standins": "$STANDINS_FOLDER",
    },
    "outputs": {
        "vivarium-python.wasm": {"sha256": "$REACTOR_SHA256",
                                  "bytes": $(wc -c <"$STAGE/vivarium-python.wasm")},
        "python.wasm": {"sha256": "$COMMAND_SHA256", "bytes": $(wc -c <"$STAGE/python.wasm")},
        "vivarium-python-numpy.wasm": {"sha256": "$NUMPY_REACTOR_SHA256",
                                        "bytes": $(wc -c <"$STAGE/vivarium-python-numpy.wasm")},
        "vivarium-python-pandas.wasm": {"sha256": "$PANDAS_REACTOR_SHA256",
                                         "bytes": $(wc -c <"$STAGE/vivarium-python-pandas.wasm")},
        "stdlib": "lib/python$PY_MM (guest path /usr/local/lib/python$PY_MM)",
        "tests": "test (CPython's Lib/test)",
    },
    "reactor_exports": json.loads(sys.argv[2])["exports"],
    "reactor_import_modules": json.loads(sys.argv[2])["import_modules"],
    "numpy_reactor_import_modules": json.loads(sys.argv[4])["import_modules"],
    "pandas_reactor_import_modules": json.loads(sys.argv[5])["import_modules"],
    "builtin_extension_modules": builtin,
    "build_seconds": {
        "this_run_total": $TOTAL_SECONDS,
        "native_build_python": ${TIMES[native_build_python]},
        "zlib": ${TIMES[zlib]},
        "configure_wasm": ${TIMES[configure_wasm]},
        "make_wasm": ${TIMES[make_wasm]},
        "link_reactor": ${TIMES[link_reactor]},
        "numpy": ${TIMES[numpy]},
        "link_numpy_reactor": ${TIMES[link_numpy_reactor]},
        "pandas": ${TIMES[pandas]},
        "link_pandas_reactor": ${TIMES[link_pandas_reactor]},
        "note": "steps already done in an earlier run count only their check here",
    },
}
with open(sys.argv[1], "w") as f:
    json.dump(info, f, indent=2)
    f.write("\n")
EOF

# Swap the staged tree into OUT (only the entries this script owns).
for entry in vivarium-python.wasm vivarium-python-numpy.wasm vivarium-python-pandas.wasm python.wasm \
    lib test build-info.json; do
    rm -rf "${OUT:?}/$entry"
    mv "$STAGE/$entry" "$OUT/$entry"
done
rm -rf "$STAGE"
TIMES[assemble]=$(elapsed_since "$t0")

echo "==> done in $(elapsed_since "$START") s"
note "$OUT/vivarium-python.wasm  $(wc -c <"$OUT/vivarium-python.wasm") bytes  sha256 $REACTOR_SHA256"
note "$OUT/vivarium-python-numpy.wasm  $(wc -c <"$OUT/vivarium-python-numpy.wasm") bytes  sha256 $NUMPY_REACTOR_SHA256"
note "$OUT/vivarium-python-pandas.wasm  $(wc -c <"$OUT/vivarium-python-pandas.wasm") bytes  sha256 $PANDAS_REACTOR_SHA256"
note "$OUT/python.wasm           $(wc -c <"$OUT/python.wasm") bytes"
note "$OUT/lib/python$PY_MM      $(du -sh "$OUT/lib/python$PY_MM" | cut -f1)"
note "$OUT/test                  $(du -sh "$OUT/test" | cut -f1)"
