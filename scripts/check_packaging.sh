#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks the Conan recipe (packaging/conan) and the vcpkg port (packaging/vcpkg/ports/agentbus)
# as far as they can be checked without Conan or vcpkg installed.
#
#   bash scripts/check_packaging.sh [--build DIR] [--prefix P] [--work DIR] [STEP...]
#
#   recipes            the Conan recipes compile as Python; run against stand-ins for the parts of
#                      Conan's API they use, the recipe's set_version() reads the version in
#                      include/agentbus/version.hpp, requirements() asks for cnats only with
#                      with_nats, package_info() declares the components agentbus and nats with the
#                      targets agentbus::agentbus and agentbus::nats; the test_package recipe
#                      requires the tested reference. vcpkg.json is valid JSON with the same
#                      version, a nats feature depending on cnats and vcpkg's host helpers.
#   test_package       the recipe's test_package (CMakeLists.txt, test_package.cpp) configured with
#                      find_package against an installed agentbus (P, or `cmake --install DIR`
#                      into WORK/prefix), built and run.
#   test_package_nats  the same with the component nats (-DAGENTBUS_TEST_PACKAGE_NATS=ON). Exits 77
#                      (skipped) when pkg-config finds no libnats, unless AGENTBUS_REQUIRE_NATS=1.
#   vcpkg_port         the port's portfile.cmake run by CMake with small stand-ins for vcpkg's
#                      helpers (configure, install, config fixup, copyright), which build and
#                      install this checkout as vcpkg would into WORK/vcpkg/packages; then the
#                      test_package built against that tree. Checks that the portfile's options
#                      exist, its CONFIG_PATH is where the config is installed, and usage and the
#                      licence are installed.
#
# Without a STEP: all four (test_package_nats reports itself skipped without libnats). DIR
# defaults to build/, WORK to a temporary directory removed at the end. python3 is needed for
# `recipes`: without it that step is skipped (77) unless AGENTBUS_REQUIRE_PYTHON=1.
# shellcheck disable=SC2317  # the steps are functions called by name (step_$step)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build prefix="" work="" steps=()
cmake=${CMAKE:-cmake}
cxx=${CXX:-c++}
usage() { sed -n '3,29s/^# \{0,1\}//p' "$0"; }
while (($#)); do
  case $1 in
    --build) build=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --cmake) cmake=$2; shift 2 ;;
    --cxx) cxx=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    recipes | test_package | test_package_nats | vcpkg_port) steps+=("$1"); shift ;;
    *) echo "check_packaging: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
((${#steps[@]})) || steps=(recipes test_package test_package_nats vcpkg_port)
if [[ -z $work ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
conan_dir=$root/packaging/conan
port_dir=$root/packaging/vcpkg/ports/agentbus
fail() {
  echo "check_packaging: $*" >&2
  exit 1
}

# The version the headers say, read here without the recipe's code.
header=$root/include/agentbus/version.hpp
version=""
for part in MAJOR MINOR PATCH; do
  n=$(sed -n "s/^#define AGENTBUS_VERSION_$part \([0-9][0-9]*\)\$/\1/p" "$header")
  [[ -n $n ]] || fail "$header defines no AGENTBUS_VERSION_$part"
  version+=${version:+.}$n
done

installed_prefix() {  # the prefix to build against: --prefix, or an install of --build
  if [[ -z $prefix ]]; then
    [[ -f $build/CMakeCache.txt ]] || fail "no build in $build (configure one, or give --build DIR or --prefix P)"
    prefix=$work/prefix
    "$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" || fail "cmake --install $build failed: $(cat "$work/install.log")"
  fi
  [[ -f $prefix/share/cmake/agentbus/agentbus-config.cmake ]] || fail "no agentbus CMake package in $prefix"
}

# build_test_package NAME PREFIX [CMAKE ARGS...]: configure, build and run test_package against PREFIX.
build_test_package() {
  local name=$1 p=$2 dir=$work/$1
  shift 2
  rm -rf "$dir"
  "$cmake" -S "$conan_dir/test_package" -B "$dir" -DCMAKE_PREFIX_PATH="$p" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=Release "$@" >"$dir.configure.log" 2>&1 ||
    fail "$name: test_package does not configure against $p:"$'\n'"$(cat "$dir.configure.log")"
  "$cmake" --build "$dir" >"$dir.build.log" 2>&1 || fail "$name: test_package does not build:"$'\n'"$(cat "$dir.build.log")"
  "$dir/test_package" || fail "$name: test_package exited $?"
}

step_recipes() {
  if ! command -v python3 >/dev/null; then
    [[ ${AGENTBUS_REQUIRE_PYTHON:-0} == 1 ]] && fail "recipes: python3 is not installed (AGENTBUS_REQUIRE_PYTHON=1)"
    echo "check_packaging: recipes SKIPPED, python3 is not installed"
    return 77
  fi
  python3 - "$conan_dir" "$port_dir" "$version" <<'PY'
import ast, importlib.util, json, os, re, sys, types

conan_dir, port_dir, version = sys.argv[1:4]
problems = []

def check(condition, message):
    if not condition:
        problems.append(message)

# 1. Both recipes are Python (compiled without running anything).
for path in (os.path.join(conan_dir, "conanfile.py"), os.path.join(conan_dir, "test_package", "conanfile.py")):
    with open(path) as f:
        ast.parse(f.read(), path)
    compile(open(path).read(), path, "exec")

# 2. Stand-ins for what the recipes import from Conan 2 (conan.ConanFile, conan.errors,
#    conan.tools.*), enough to call their methods.
class ConanException(Exception):
    pass

class ConanFile:
    pass

calls = []

def recorder(name):
    def call(*args, **kwargs):
        calls.append((name, args, kwargs))
    return call

def load(conanfile, path, encoding="utf-8"):
    with open(path, encoding=encoding) as f:
        return f.read()

modules = {
    "conan": {"ConanFile": ConanFile},
    "conan.errors": {"ConanException": ConanException, "ConanInvalidConfiguration": ConanException},
    "conan.tools": {},
    "conan.tools.files": {"copy": recorder("copy"), "load": load},
    "conan.tools.build": {"check_min_cppstd": recorder("check_min_cppstd"), "can_run": lambda conanfile: True},
    "conan.tools.layout": {"basic_layout": recorder("basic_layout")},
    "conan.tools.cmake": {"CMake": recorder("CMake"), "CMakeToolchain": recorder("CMakeToolchain"),
                          "cmake_layout": recorder("cmake_layout")},
}
for name, attrs in modules.items():
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module

def load_recipe(path):
    spec = importlib.util.spec_from_file_location("recipe_" + str(abs(hash(path))), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, ConanFile) and c is not ConanFile]
    if len(classes) != 1:
        raise SystemExit("check_packaging: %s: %d ConanFile classes, not 1" % (path, len(classes)))
    return classes[0]

class Options:
    def __init__(self, **values):
        self.__dict__.update(values)

class Settings:
    def __init__(self, **values):
        self.__dict__.update(values)
    def get_safe(self, name, default=None):
        return self.__dict__.get(name, default)

class Component:
    def __init__(self):
        self.properties = {}
        self.requires = []
        self.system_libs = []
        self.bindirs = ["bin"]
        self.libdirs = ["lib"]
    def set_property(self, name, value):
        self.properties[name] = value

class CppInfo(Component):
    def __init__(self):
        super().__init__()
        self.components = {}
        outer = self
        class Components(dict):
            def __missing__(self, key):
                self[key] = Component()
                return self[key]
        self.components = Components()

# 3. The recipe.
recipe_path = os.path.join(conan_dir, "conanfile.py")
Recipe = load_recipe(recipe_path)
check(getattr(Recipe, "name", None) == "agentbus", "the recipe's name is %r, not 'agentbus'" % getattr(Recipe, "name", None))
check(getattr(Recipe, "package_type", None) == "header-library",
      "package_type is %r, not 'header-library'" % getattr(Recipe, "package_type", None))
check("version" not in vars(Recipe), "the recipe writes its version itself instead of reading version.hpp")
check(getattr(Recipe, "options", {}).get("with_nats") == [True, False], "no option with_nats [True, False]")
check(getattr(Recipe, "default_options", {}).get("with_nats") is False, "with_nats does not default to False")
check(callable(getattr(Recipe, "export_sources", None)), "the recipe exports no sources")

recipe = Recipe()
recipe.recipe_folder = conan_dir
recipe.version = None
recipe.set_version()
check(str(recipe.version) == version,
      "set_version() gives %r, include/agentbus/version.hpp says %s" % (recipe.version, version))
recipe.version = "0.0.0-other"
try:
    recipe.set_version()
    problems.append("set_version() accepts a --version that is not version.hpp's")
except ConanException:
    pass

for with_nats in (False, True):
    recipe = Recipe()
    recipe.options = Options(with_nats=with_nats)
    recipe.settings = Settings(os="Linux")
    requires = []
    recipe.requires = lambda ref, **traits: requires.append((ref, traits))
    recipe.requirements()
    cnats = [r for r, _ in requires if r.split("/")[0] == "cnats"]
    if with_nats:
        check(len(cnats) == 1, "with_nats=True: requirements() asks for %r, not one cnats" % [r for r, _ in requires])
        check(all(t.get("transitive_headers") and t.get("transitive_libs") for r, t in requires if r.startswith("cnats/")),
              "with_nats=True: cnats is not required with transitive_headers and transitive_libs")
    else:
        check(requires == [], "with_nats=False: requirements() asks for %r" % requires)

    recipe.cpp_info = CppInfo()
    recipe.package_info()
    info = recipe.cpp_info
    expected = {"agentbus"} | ({"nats"} if with_nats else set())
    check(set(info.components) == expected,
          "with_nats=%s: package_info() declares the components %s, not %s" % (with_nats, sorted(info.components), sorted(expected)))
    check(info.properties.get("cmake_file_name") == "agentbus", "cmake_file_name is not agentbus")
    targets = {name: c.properties.get("cmake_target_name") for name, c in info.components.items()}
    check(targets.get("agentbus") == "agentbus::agentbus", "component agentbus: CMake target %r" % targets.get("agentbus"))
    check(info.properties.get("cmake_target_name") not in targets.values(),
          "the package's own target %r is also a component's (it would link every component)" % info.properties.get("cmake_target_name"))
    for name, c in info.components.items():
        check(c.bindirs == [] and c.libdirs == [], "component %s: a header-only component with bindirs/libdirs" % name)
    if with_nats:
        nats = info.components["nats"]
        check(targets.get("nats") == "agentbus::nats", "component nats: CMake target %r" % targets.get("nats"))
        check("agentbus" in nats.requires and "cnats::cnats" in nats.requires,
              "component nats requires %r, not agentbus and cnats::cnats" % nats.requires)
        check(info.components["agentbus"].requires == [], "the core component requires %r" % info.components["agentbus"].requires)

# 4. The test_package recipe requires the reference under test.
Test = load_recipe(os.path.join(conan_dir, "test_package", "conanfile.py"))
test = Test()
test.tested_reference_str = "agentbus/%s" % version
requires = []
test.requires = lambda ref, **traits: requires.append(ref)
test.requirements()
check(requires == ["agentbus/%s" % version], "test_package requires %r, not the tested reference" % requires)
check(getattr(Test, "test_type", None) == "explicit", "test_package: test_type is not 'explicit'")
check(callable(getattr(Test, "test", None)), "test_package has no test()")

# 5. vcpkg.json.
with open(os.path.join(port_dir, "vcpkg.json")) as f:
    manifest = json.load(f)
check(manifest.get("name") == "agentbus", "vcpkg.json: name %r" % manifest.get("name"))
port_version = manifest.get("version") or manifest.get("version-semver") or manifest.get("version-string")
check(port_version == version, "vcpkg.json: version %r, include/agentbus/version.hpp says %s" % (port_version, version))
def dependency_names(deps, host):
    return {d if isinstance(d, str) else d["name"] for d in deps
            if (isinstance(d, dict) and d.get("host", False)) == host}
host_deps = dependency_names(manifest.get("dependencies", []), True)
check({"vcpkg-cmake", "vcpkg-cmake-config"} <= host_deps, "vcpkg.json: host dependencies %s" % sorted(host_deps))
nats_feature = manifest.get("features", {}).get("nats")
check(nats_feature is not None and "cnats" in dependency_names(nats_feature.get("dependencies", []), False),
      "vcpkg.json: no feature nats depending on cnats")
check(os.path.isfile(os.path.join(port_dir, "usage")), "the port has no usage file")

if problems:
    for p in problems:
        print("check_packaging: recipes: " + p, file=sys.stderr)
    sys.exit(1)
print("check_packaging: recipes: conanfile.py (version %s read from version.hpp, components agentbus and nats), "
      "test_package/conanfile.py and vcpkg.json are consistent" % version)
PY
}

step_test_package() {
  installed_prefix
  build_test_package test_package "$prefix"
  echo "check_packaging: test_package built with find_package(agentbus) against $prefix and ran"
}

step_test_package_nats() {
  if ! command -v pkg-config >/dev/null || ! pkg-config --exists libnats; then
    [[ ${AGENTBUS_REQUIRE_NATS:-0} == 1 ]] && fail "test_package_nats: pkg-config finds no libnats (AGENTBUS_REQUIRE_NATS=1)"
    echo "check_packaging: test_package_nats SKIPPED, pkg-config finds no libnats (Debian: libnats-dev, pkg-config)"
    return 77
  fi
  installed_prefix
  build_test_package test_package_nats "$prefix" -DAGENTBUS_TEST_PACKAGE_NATS=ON
  echo "check_packaging: test_package built with find_package(agentbus COMPONENTS nats) against $prefix and ran"
}

step_vcpkg_port() {
  local v=$work/vcpkg
  rm -rf "$v"
  mkdir -p "$v"
  # Stand-ins for the vcpkg helpers the portfile calls, doing what vcpkg's own do for a
  # header-only port with one (release) configuration. They check their arguments as vcpkg would.
  cat >"$v/driver.cmake" <<'CMAKE'
cmake_minimum_required(VERSION 3.21)
set(VCPKG_TARGET_EXECUTABLE_SUFFIX "")
function(vcpkg_cmake_configure)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "SOURCE_PATH" "OPTIONS")
  if(NOT EXISTS "${arg_SOURCE_PATH}/CMakeLists.txt")
    message(FATAL_ERROR "vcpkg_cmake_configure: SOURCE_PATH ${arg_SOURCE_PATH} has no CMakeLists.txt")
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${arg_SOURCE_PATH}" -B "${WORK}/build"
      -DCMAKE_BUILD_TYPE=Release "-DCMAKE_INSTALL_PREFIX=${CURRENT_PACKAGES_DIR}" "-DCMAKE_CXX_COMPILER=${CXX}" ${arg_OPTIONS}
    OUTPUT_FILE "${WORK}/configure.log" ERROR_FILE "${WORK}/configure.err" RESULT_VARIABLE result)
  file(READ "${WORK}/configure.err" err)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "vcpkg_cmake_configure: the configure failed: ${err}")
  endif()
  if(err MATCHES "Manually-specified variables were not used")
    message(FATAL_ERROR "vcpkg_cmake_configure: the port passes options the project does not have: ${err}")
  endif()
endfunction()
function(vcpkg_cmake_install)
  execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK}/build" RESULT_VARIABLE result)
  execute_process(COMMAND "${CMAKE_COMMAND}" --install "${WORK}/build" OUTPUT_QUIET RESULT_VARIABLE result2)
  if(NOT result EQUAL 0 OR NOT result2 EQUAL 0)
    message(FATAL_ERROR "vcpkg_cmake_install: the build or install failed")
  endif()
endfunction()
function(vcpkg_cmake_config_fixup)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "CONFIG_PATH;PACKAGE_NAME" "")
  if(NOT arg_PACKAGE_NAME)
    set(arg_PACKAGE_NAME "${PORT}")
  endif()
  set(from "${CURRENT_PACKAGES_DIR}/${arg_CONFIG_PATH}")
  set(to "${CURRENT_PACKAGES_DIR}/share/${arg_PACKAGE_NAME}")
  if(NOT EXISTS "${from}/${arg_PACKAGE_NAME}-config.cmake")
    message(FATAL_ERROR "vcpkg_cmake_config_fixup: CONFIG_PATH ${arg_CONFIG_PATH} holds no ${arg_PACKAGE_NAME}-config.cmake")
  endif()
  file(GLOB files "${from}/*")
  file(COPY ${files} DESTINATION "${to}")
  file(REMOVE_RECURSE "${from}")
  get_filename_component(parent "${from}" DIRECTORY)
  get_filename_component(parent_name "${parent}" NAME)
  if(parent_name STREQUAL "cmake")
    file(REMOVE_RECURSE "${parent}")
  endif()
  # The files moved to share/<name>: two levels below the prefix.
  file(GLOB cmake_files "${to}/*.cmake")
  foreach(f IN LISTS cmake_files)
    file(READ "${f}" contents)
    string(REGEX REPLACE "get_filename_component\\(PACKAGE_PREFIX_DIR \"\\\${CMAKE_CURRENT_LIST_DIR}/[./]*\" ABSOLUTE\\)"
      "get_filename_component(PACKAGE_PREFIX_DIR \"\${CMAKE_CURRENT_LIST_DIR}/../../\" ABSOLUTE)" contents "${contents}")
    string(REGEX REPLACE "(get_filename_component\\(_IMPORT_PREFIX \"\\\${CMAKE_CURRENT_LIST_FILE}\" PATH\\)\n)(get_filename_component\\(_IMPORT_PREFIX \"\\\${_IMPORT_PREFIX}\" PATH\\)\n)+"
      "\\1\\2\\2" contents "${contents}")
    file(WRITE "${f}" "${contents}")
  endforeach()
endfunction()
function(vcpkg_fixup_pkgconfig)
  file(GLOB pc_files "${CURRENT_PACKAGES_DIR}/lib/pkgconfig/*.pc" "${CURRENT_PACKAGES_DIR}/share/pkgconfig/*.pc")
  if(NOT pc_files)
    message(FATAL_ERROR "vcpkg_fixup_pkgconfig: no .pc file installed")
  endif()
endfunction()
function(vcpkg_install_copyright)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "" "FILE_LIST")
  foreach(f IN LISTS arg_FILE_LIST)
    if(NOT EXISTS "${f}")
      message(FATAL_ERROR "vcpkg_install_copyright: ${f} does not exist")
    endif()
  endforeach()
  list(GET arg_FILE_LIST 0 first)
  file(READ "${first}" text)
  file(WRITE "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright" "${text}")
endfunction()
include("${PORTFILE}")
CMAKE
  local port_version
  port_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$port_dir/vcpkg.json" | head -n 1)
  local packages=$v/packages
  "$cmake" -DPORT=agentbus -DVERSION="$port_version" -DCURRENT_PACKAGES_DIR="$packages" -DWORK="$v" -DCXX="$cxx" \
    -DPORTFILE="$port_dir/portfile.cmake" -P "$v/driver.cmake" >"$v/port.log" 2>&1 ||
    fail "vcpkg_port: the portfile failed:"$'\n'"$(cat "$v/port.log")"
  [[ -f $packages/share/agentbus/agentbus-config.cmake ]] || fail "vcpkg_port: no share/agentbus/agentbus-config.cmake"
  [[ ! -e $packages/share/cmake ]] || fail "vcpkg_port: share/cmake is left behind"
  [[ -f $packages/share/agentbus/usage ]] || fail "vcpkg_port: no usage file installed"
  [[ -s $packages/share/agentbus/copyright ]] || fail "vcpkg_port: no copyright file installed"
  [[ -f $packages/include/agentbus/agentbus.hpp && -f $packages/include/agentbus/bridge/nats.hpp ]] ||
    fail "vcpkg_port: the headers are not installed"
  [[ ! -e $packages/bin && ! -e $packages/lib ]] || fail "vcpkg_port: a header-only port installs bin/ or lib/"
  build_test_package vcpkg_test_package "$packages"
  echo "check_packaging: vcpkg port: portfile installed agentbus $port_version as vcpkg lays it out; test_package built against it and ran"
}

status=0
for step in "${steps[@]}"; do
  rc=0
  "step_$step" || rc=$?
  if ((rc == 77)); then
    ((status == 0)) && ((${#steps[@]} == 1)) && status=77
  elif ((rc != 0)); then
    exit "$rc"
  fi
done
exit "$status"
