// meridian validate FILE...: fleets first, then workloads resolved against
// the (first) fleet given in the same call.
#include <cstdio>
#include <iostream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "spec/spec.h"

namespace meridian::cli {

int RunValidate(const ValidateArgs& args) {
  struct Item {
    std::string file;
    spec::DocumentKind kind = spec::DocumentKind::kUnknown;
    std::string text;
    std::vector<spec::Diagnostic> diags;
    std::string summary;
  };
  std::vector<Item> items;
  for (const std::string& f : args.files) {
    Item it;
    it.file = f;
    auto text = spec::ReadFile(f);
    if (!text.ok()) {
      it.diags.push_back({f, 0, 0, "", std::string(text.status().message())});
    } else {
      it.text = *std::move(text);
      it.kind = spec::DetectKind(it.text, f);
    }
    items.push_back(std::move(it));
  }
  std::optional<Fleet> fleet;
  for (Item& it : items) {
    if (!it.diags.empty() || it.kind == spec::DocumentKind::kWorkload ||
        it.kind == spec::DocumentKind::kJob || it.kind == spec::DocumentKind::kEndpoint)
      continue;
    if (it.kind == spec::DocumentKind::kUnknown) {
      // Syntax errors surface through the parser; otherwise say what is missing.
      std::vector<spec::Diagnostic> d;
      (void)spec::ParseFleet(it.text, it.file, &d);
      bool syntax = false;
      for (const auto& x : d) syntax |= x.path.empty() && x.line > 0;
      if (syntax) {
        it.diags = std::move(d);
      } else {
        it.diags.push_back({it.file, 1, 1, "kind",
                            "cannot tell what this is: add `kind: fleet`, `kind: workload`, "
                            "`kind: job`, `kind: training` or `kind: endpoint`"});
      }
      continue;
    }
    auto f = spec::ParseFleet(it.text, it.file, &it.diags);
    if (f.ok()) {
      it.summary = absl::StrCat("fleet: ", f->regions().size(), " regions, ", f->groups().size(),
                                " node groups, ", f->nodes().size(), " nodes, ",
                                f->total_capacity().gpu_milli / 1000, " GPUs");
      if (!fleet) fleet = *std::move(f);
    }
  }
  for (Item& it : items) {
    if (!it.diags.empty() || it.kind != spec::DocumentKind::kWorkload) continue;
    auto w = spec::ParseWorkload(it.text, it.file, fleet ? &*fleet : nullptr, &it.diags);
    if (w.ok())
      it.summary = absl::StrCat("workload: ", w->tenants.size(), " tenants, ", w->jobs.size(),
                                " jobs", fleet ? "" : " (fleet references not checked: no fleet given)");
  }
  for (Item& it : items) {
    if (!it.diags.empty() || it.kind != spec::DocumentKind::kJob) continue;
    auto j = spec::ParseJobSpec(it.text, it.file, fleet ? &*fleet : nullptr, &it.diags);
    if (j.ok())
      it.summary = absl::StrCat("job '", j->job.name, "': ", j->job.replicas, " replica(s), command ",
                                j->command[0],
                                fleet ? "" : " (fleet references not checked: no fleet given)");
  }
  for (Item& it : items) {
    if (!it.diags.empty() || it.kind != spec::DocumentKind::kEndpoint) continue;
    auto e = spec::ParseEndpointSpec(it.text, it.file, &it.diags);
    if (e.ok())
      it.summary = absl::StrCat("endpoint '", e->name, "': ", e->min_replicas,
                                e->max_replicas > e->min_replicas
                                    ? absl::StrCat("..", e->max_replicas)
                                    : std::string(),
                                " replica(s) of ", e->model);
  }
  int problems = 0;
  nlohmann::json out = nlohmann::json::array();
  for (const Item& it : items) {
    problems += static_cast<int>(it.diags.size());
    if (args.json) {
      nlohmann::json j{{"file", it.file}, {"ok", it.diags.empty()}, {"summary", it.summary}};
      j["diagnostics"] = nlohmann::json::array();
      for (const auto& d : it.diags)
        j["diagnostics"].push_back({{"file", d.file},
                                    {"line", d.line},
                                    {"column", d.column},
                                    {"path", d.path},
                                    {"message", d.message}});
      out.push_back(std::move(j));
      continue;
    }
    for (const auto& d : it.diags) std::cerr << d.ToString() << "\n";
    if (it.diags.empty()) std::cout << it.file << ": ok (" << it.summary << ")\n";
  }
  if (args.json) std::cout << nlohmann::json{{"files", out}, {"problems", problems}}.dump(2) << "\n";
  else if (problems > 0)
    std::cerr << problems << " problem(s) found\n";
  return problems == 0 ? kExitOk : kExitInvalid;
}

}  // namespace meridian::cli
