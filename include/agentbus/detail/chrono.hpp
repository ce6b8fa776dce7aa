// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_CHRONO_HPP
#define AGENTBUS_DETAIL_CHRONO_HPP

// What agentbus uses of <chrono>: durations, time points, duration_cast, the steady and
// system clocks and the chrono literals. Since C++20, <chrono> also brings calendars, time
// zones and their text formatting, and with them <sstream> and <locale>: with libstdc++ 12 that
// is 0.45 s of the 3.6 s a hello world with agentbus.hpp takes to compile at -O2 (bench/compile).
// libstdc++ declares the part used here in <bits/chrono.h>, the header its own <thread> and
// <mutex> include; with another standard library, <chrono>. A program that uses the rest of
// <chrono> includes <chrono> itself, as it would anyway.

#include <version>  // defines __GLIBCXX__ (and nothing heavy)

#if defined(__GLIBCXX__) && defined(__has_include)
#if __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#define AGENTBUS_CHRONO_INCLUDED 1
#endif
#endif
#if !defined(AGENTBUS_CHRONO_INCLUDED)
#include <chrono>
#endif
#undef AGENTBUS_CHRONO_INCLUDED

#endif  // AGENTBUS_DETAIL_CHRONO_HPP
