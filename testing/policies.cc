#include "testing/policies.h"

namespace meridian::test {

const PolicyRegistry& BuiltinRegistry() {
  static const PolicyRegistry registry = [] {
    PolicyRegistry r;
    RegisterBuiltinPolicies(r);
    return r;
  }();
  return registry;
}

}  // namespace meridian::test
