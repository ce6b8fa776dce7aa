#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Stands for a package test that needs the NATS C client in a build configured without it:
# says so and exits 77 (ctest: skipped), or fails where AGENTBUS_REQUIRE_NATS=1 (CI).
echo "SKIPPED: this build has no agentbus::nats: pkg-config found no libnats when it was configured" \
  "(Debian: libnats-dev, pkg-config), or it was configured with AGENTBUS_NATS=OFF"
if [[ ${AGENTBUS_REQUIRE_NATS:-0} == 1 ]]; then
  echo "AGENTBUS_REQUIRE_NATS=1: a test that needs libnats cannot be skipped" >&2
  exit 1
fi
exit 77
