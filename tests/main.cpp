// SPDX-License-Identifier: MIT
// Catch2 entry point shared by the unit and stress test executables.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
