// libFuzzer target for the spec parsers (outside input: fleet and workload
// files). Each input is classified, parsed as a fleet and as a workload
// (against the example fleet and without a fleet). Invariants checked: no
// crash, no escaping exception, every failure carries a diagnostic, and a
// fleet that parses is written back by FleetToYaml into text that parses
// again. Inputs may declare up to 1M nodes (~0.5 GiB under ASan), so run
// with -rss_limit_mb=4096 (see fuzz/CMakeLists.txt). Also linked into
// tests/spec/fuzz_regression_test.cc, which calls LLVMFuzzerTestOneInput directly.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/fleet.h"
#include "spec/spec.h"

#ifndef MERIDIAN_EXAMPLE_FLEET
#error "MERIDIAN_EXAMPLE_FLEET must name examples/fleets/multi-region.yaml"
#endif

namespace {

const meridian::Fleet* ExampleFleet() {
  static const meridian::Fleet* fleet = [] {
    absl::StatusOr<meridian::Fleet> f = meridian::spec::LoadFleet(MERIDIAN_EXAMPLE_FLEET, nullptr);
    if (!f.ok()) {
      std::fprintf(stderr, "cannot load example fleet: %s\n", f.status().ToString().c_str());
      std::abort();
    }
    return new meridian::Fleet(*std::move(f));
  }();
  return fleet;
}

void Require(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "spec fuzzer invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const meridian::Fleet* example = ExampleFleet();
  for (std::string_view name : {"fuzz.yaml", "fuzz.json"}) {
    (void)meridian::spec::DetectKind(text, name);
    std::vector<meridian::spec::Diagnostic> diags;
    absl::StatusOr<meridian::Fleet> fleet = meridian::spec::ParseFleet(text, name, &diags);
    Require(fleet.ok() == diags.empty(), "fleet: failure without diagnostics (or vice versa)");
    for (const auto& d : diags) (void)d.ToString();
    // The round trip of a fleet near the node cap (1M nodes) would double
    // the memory of an already large input; small fleets cover the writer.
    if (fleet.ok() && fleet->nodes().size() <= 100'000) {
      std::string yaml = meridian::spec::FleetToYaml(*fleet);
      absl::StatusOr<meridian::Fleet> again = meridian::spec::ParseFleet(yaml, "rt.yaml", nullptr);
      if (!again.ok())
        std::fprintf(stderr, "%s\n---\n%s\n", again.status().ToString().c_str(), yaml.c_str());
      Require(again.ok(), "FleetToYaml output does not parse");
      Require(again->nodes().size() == fleet->nodes().size(), "round trip changed the node count");
    }
    diags.clear();
    absl::StatusOr<meridian::Workload> w =
        meridian::spec::ParseWorkload(text, name, example, &diags);
    Require(w.ok() == diags.empty(), "workload: failure without diagnostics (or vice versa)");
    (void)meridian::spec::ParseWorkload(text, name, nullptr, nullptr);
    diags.clear();
    absl::StatusOr<meridian::spec::EndpointSpec> ep =
        meridian::spec::ParseEndpointSpec(text, name, &diags);
    Require(ep.ok() == diags.empty(), "endpoint: failure without diagnostics (or vice versa)");
    if (ep.ok()) Require(ep->min_replicas <= ep->max_replicas, "endpoint: min above max");
  }
  return 0;
}
