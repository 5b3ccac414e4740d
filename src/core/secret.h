// Comparing credentials (bearer tokens) without a timing side channel.
#pragma once

#include <cstddef>
#include <string_view>

namespace meridian {

// True when `given` equals `expected`, in time that depends only on the
// length of `given`, not on where the two differ, so that response times do
// not reveal a token prefix by prefix. An empty `expected` matches nothing.
inline bool SameSecret(std::string_view given, std::string_view expected) {
  if (expected.empty()) return false;
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ expected[i % expected.size()]);
  return diff == 0;
}

}  // namespace meridian
