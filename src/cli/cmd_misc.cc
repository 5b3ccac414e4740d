// meridian import ... and meridian policies.
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "core/synthetic.h"
#include "placement/registry.h"
#include "spec/importers.h"
#include "spec/spec.h"

namespace meridian::cli {

int RunImport(const ImportArgs& a) {
  absl::StatusOr<Fleet> fleet;
  if (a.source == "synthetic") {
    SyntheticFleetOptions o;
    o.nodes = a.nodes_per_group;
    o.regions = a.synthetic_regions;
    o.seed = a.seed;
    fleet = MakeSyntheticFleet(o);
  } else if (a.source == "openb") {
    fleet = spec::ImportOpenbFleet(a.input, spec::OpenbImportOptions{});
  } else {
    spec::GcpImportOptions o;
    o.regions = a.regions;
    o.gpu_types = a.gpu_types;
    o.nodes_per_group = a.nodes_per_group;
    fleet = spec::ImportGcpFleet(a.input, a.skyplane_dir, o);
  }
  if (!fleet.ok()) {
    std::cerr << "import " << a.source << ": " << fleet.status().message() << "\n";
    return kExitInvalid;
  }
  std::string yaml = spec::FleetToYaml(*fleet);
  if (a.output.empty() || a.output == "-") {
    std::cout << yaml;
  } else {
    std::ofstream out(a.output);
    out << yaml;
    if (!out) {
      std::cerr << "import: cannot write " << a.output << "\n";
      return kExitError;
    }
    std::cerr << "wrote " << a.output << ": " << fleet->regions().size() << " regions, "
              << fleet->groups().size() << " node groups, " << fleet->nodes().size() << " nodes\n";
  }
  return kExitOk;
}

int RunPolicies(bool json) {
  PolicyRegistry r;
  RegisterBuiltinPolicies(r);
  if (json) {
    std::cout << nlohmann::json{{"filters", r.FilterNames()},
                                {"scorers", r.ScorerNames()},
                                {"selectors", r.SelectorNames()}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  auto print = [](const char* what, const std::vector<std::string>& names) {
    std::cout << what << ":";
    for (const auto& n : names) std::cout << " " << n;
    std::cout << "\n";
  };
  print("filters", r.FilterNames());
  print("scorers", r.ScorerNames());
  print("selectors", r.SelectorNames());
  return kExitOk;
}

}  // namespace meridian::cli
