// SPDX-License-Identifier: MIT
#ifndef AGENTBUS_TESTS_ODR_EVENT_HPP
#define AGENTBUS_TESTS_ODR_EVENT_HPP
struct odr_event {
  int value;
};
#endif
