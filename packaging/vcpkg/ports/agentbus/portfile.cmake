# SPDX-License-Identifier: MIT
# vcpkg port of agentbus (header-only). Used from a checkout as an overlay port:
#   vcpkg install agentbus --overlay-ports=<checkout>/packaging/vcpkg/ports
#   vcpkg install "agentbus[nats]" --overlay-ports=<checkout>/packaging/vcpkg/ports
# or from a project's vcpkg.json with "overlay-ports" in its vcpkg-configuration.json.
set(VCPKG_BUILD_TYPE release)  # header-only: one configuration

# The sources: the checkout this port lives in (packaging/vcpkg/ports/agentbus/ -> its root).
# For a registry, replace this block by the published release:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO agentbus/agentbus REF "v${VERSION}"
#     SHA512 <SHA-512 of that archive> HEAD_REF main)
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
if(NOT EXISTS "${SOURCE_PATH}/include/agentbus/version.hpp")
  message(FATAL_ERROR "agentbus: this port builds the checkout it lives in, and ${SOURCE_PATH} is not one "
    "(no include/agentbus/version.hpp). Outside the checkout, use vcpkg_from_github (see above).")
endif()
# Its version must be the one the sources say (include/agentbus/version.hpp).
file(STRINGS "${SOURCE_PATH}/include/agentbus/version.hpp" version_lines REGEX "^#define AGENTBUS_VERSION_(MAJOR|MINOR|PATCH) ")
set(source_version "")
foreach(part MAJOR MINOR PATCH)
  string(REGEX MATCH "AGENTBUS_VERSION_${part} ([0-9]+)" _ "${version_lines}")
  list(APPEND source_version "${CMAKE_MATCH_1}")
endforeach()
list(JOIN source_version "." source_version)
if(NOT source_version STREQUAL VERSION)
  message(FATAL_ERROR "agentbus: vcpkg.json says version ${VERSION}, include/agentbus/version.hpp ${source_version}")
endif()

# Only the library and its package files are installed; the nats feature brings cnats, which
# agentbus's CMake package finds (with pkg-config) when a project asks for COMPONENTS nats.
vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DAGENTBUS_BUILD_TESTS=OFF
    -DAGENTBUS_BUILD_EXAMPLES=OFF
    -DAGENTBUS_BUILD_BENCH=OFF
    -DAGENTBUS_BUILD_TOOLS=OFF
    -DAGENTBUS_INSTALL=ON
    -DAGENTBUS_NATS=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/agentbus)
vcpkg_fixup_pkgconfig()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
