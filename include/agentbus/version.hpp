// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_VERSION_HPP
#define AGENTBUS_VERSION_HPP

// The one place the version is written; CMakeLists.txt reads it from here.
#define AGENTBUS_VERSION_MAJOR 0
#define AGENTBUS_VERSION_MINOR 1
#define AGENTBUS_VERSION_PATCH 0

/// @brief Version as a single comparable number: major * 10000 + minor * 100 + patch.
#define AGENTBUS_VERSION (AGENTBUS_VERSION_MAJOR * 10000 + AGENTBUS_VERSION_MINOR * 100 + AGENTBUS_VERSION_PATCH)

#endif  // AGENTBUS_VERSION_HPP
