// MERIDIAN_CHECK: crash loudly when an invariant is broken.
//
// For conditions that "should never happen" (STYLE.md): expected failures
// return absl::Status instead. Active in every build type.
#pragma once

#include <cstdio>
#include <cstdlib>

#define MERIDIAN_CHECK(cond, msg)                                                     \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s: %s\n", __FILE__, __LINE__, #cond, \
                   msg);                                                              \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)
