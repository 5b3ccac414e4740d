// The one rule for tenant, user, service-account and secret-store names:
// [a-z0-9][a-z0-9._-]{0,62}. Header-only so that the spec parser (which must
// not link OpenSSL) and the auth module check the same thing.
#pragma once

#include <string_view>

namespace meridian {

inline bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name[0])) return false;
  for (char c : name)
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

}  // namespace meridian
