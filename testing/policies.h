// BuiltinRegistry(): a PolicyRegistry holding exactly the built-in policies,
// built once on first use and shared read-only (const use of a registry is
// thread-safe, registry.h). Tests that need extra or fake policies build
// their own registry instead.
#pragma once

#include "placement/registry.h"

namespace meridian::test {

const PolicyRegistry& BuiltinRegistry();

}  // namespace meridian::test
