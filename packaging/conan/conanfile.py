# SPDX-License-Identifier: MIT
# Conan 2 recipe for agentbus, a header-only C++20 event bus. From the root of a checkout:
#
#   conan create packaging/conan                           agentbus::agentbus (the core)
#   conan create packaging/conan -o "agentbus/*:with_nats=True"
#                                                          also agentbus::nats (the NATS bridge,
#                                                          agentbus/bridge/nats.hpp), with cnats
#
# The recipe packages the checkout it lives in (export_sources copies include/ and LICENSE), and
# its version is the one written in include/agentbus/version.hpp, read when the recipe is
# exported. The CMake package that CMakeDeps makes for it has the targets of agentbus's own
# (find_package(agentbus CONFIG REQUIRED [COMPONENTS nats])); scripts/check_packaging.sh checks
# this recipe and builds test_package/ against an installed agentbus.
import os
import re

from conan import ConanFile
from conan.errors import ConanException
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


def read_version(header_text):
    """The version "MAJOR.MINOR.PATCH" that include/agentbus/version.hpp defines."""
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        match = re.search(r"^#define AGENTBUS_VERSION_%s (\d+)\s*$" % part, header_text, re.MULTILINE)
        if match is None:
            raise ConanException("agentbus: include/agentbus/version.hpp defines no AGENTBUS_VERSION_%s" % part)
        parts.append(match.group(1))
    return ".".join(parts)


class AgentbusConan(ConanFile):
    name = "agentbus"
    description = ("Header-only C++20 event bus for cooperating agents: typed events on hierarchical "
                   "topics, wildcards, request/reply, durable consumers, a journal, a NATS bridge")
    license = "MIT"
    url = "https://github.com/agentbus/agentbus"
    homepage = "https://github.com/agentbus/agentbus"
    topics = ("event-bus", "publish-subscribe", "agents", "messaging", "nats", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"with_nats": [True, False]}
    default_options = {"with_nats": False}
    no_copy_source = True

    @property
    def _checkout(self):
        # packaging/conan/ -> the root of the checkout.
        return os.path.join(self.recipe_folder, os.pardir, os.pardir)

    def set_version(self):
        version = read_version(load(self, os.path.join(self._checkout, "include", "agentbus", "version.hpp")))
        if self.version and str(self.version) != version:
            raise ConanException("agentbus: --version %s, but include/agentbus/version.hpp says %s"
                                 % (self.version, version))
        self.version = version

    def export_sources(self):
        copy(self, "include/*", self._checkout, self.export_sources_folder)
        copy(self, "LICENSE", self._checkout, self.export_sources_folder)

    def layout(self):
        basic_layout(self)

    def requirements(self):
        if self.options.with_nats:
            # agentbus/transport/nats.hpp includes <nats/nats.h> and calls the client from inline
            # code: its headers and libraries reach whoever uses agentbus::nats.
            self.requires("cnats/[>=3.4 <4]", transitive_headers=True, transitive_libs=True)

    def package_id(self):
        # The same headers whatever the settings and options: with_nats only adds a requirement.
        self.info.clear()

    def validate(self):
        if self.settings.get_safe("compiler.cppstd"):
            check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        # The components are the targets of agentbus's own CMake package (and its .pc files). The
        # package as a whole (every component) gets a target of its own name: agentbus::agentbus
        # is the core alone, as in agentbus's CMake package, and never links cnats.
        self.cpp_info.set_property("cmake_file_name", "agentbus")
        self.cpp_info.set_property("cmake_target_name", "agentbus::all")
        self.cpp_info.set_property("pkg_config_name", "agentbus-all")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []

        core = self.cpp_info.components["agentbus"]
        core.set_property("cmake_target_name", "agentbus::agentbus")
        core.set_property("pkg_config_name", "agentbus")
        core.bindirs = []
        core.libdirs = []
        if self.settings.os in ("Linux", "FreeBSD"):
            core.system_libs = ["pthread"]

        if self.options.with_nats:
            nats = self.cpp_info.components["nats"]
            nats.set_property("cmake_target_name", "agentbus::nats")
            nats.set_property("pkg_config_name", "agentbus-nats")
            nats.requires = ["agentbus", "cnats::cnats"]
            nats.bindirs = []
            nats.libdirs = []
