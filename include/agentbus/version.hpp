// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_VERSION_HPP
#define AGENTBUS_VERSION_HPP

// The one place the version is written; CMakeLists.txt reads it from here.
/// @brief Major version: incremented for incompatible changes.
#define AGENTBUS_VERSION_MAJOR 0
/// @brief Minor version: incremented for compatible additions.
#define AGENTBUS_VERSION_MINOR 1
/// @brief Patch version: incremented for fixes.
#define AGENTBUS_VERSION_PATCH 0

/// @brief Version as a single comparable number: major * 10000 + minor * 100 + patch.
#define AGENTBUS_VERSION (AGENTBUS_VERSION_MAJOR * 10000 + AGENTBUS_VERSION_MINOR * 100 + AGENTBUS_VERSION_PATCH)

#endif  // AGENTBUS_VERSION_HPP
