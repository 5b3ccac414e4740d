// `kind: endpoint`: see spec.h.
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "spec/document.h"
#include "spec/quote.h"
#include "spec/spec.h"

namespace meridian::spec {

using internal::MapReader;
using internal::Need;

absl::StatusOr<EndpointSpec> ParseEndpointSpec(std::string_view text, std::string_view filename,
                                               std::vector<Diagnostic>* diags) {
  internal::DiagnosticSink sink(internal::ToAbsl(filename));
  EndpointSpec spec;
  std::optional<YAML::Node> root =
      internal::LoadDocument(internal::ToAbsl(text), internal::ToAbsl(filename), &sink);
  if (root) {
    MapReader m(&sink, *root, "",
                {"kind", "name", "tenant", "model", "replicas", "shape", "regions", "autoscale",
                 "token", "min_ready"});
    if (m.ok()) {
      internal::CheckKind(&m, "endpoint");
      if (std::optional<std::string> name = m.Name("name", Need::kRequired)) {
        bool valid = name->size() <= 40;
        for (char c : *name)
          valid &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        if (!valid)
          m.Error("name", "an endpoint name is 1 to 40 lowercase letters, digits and '-' (it is "
                          "part of URLs and job names)");
        spec.name = *name;
      }
      if (std::optional<YAML::Node> t = m.Get("tenant", Need::kOptional))
        spec.tenant = internal::ReadTenant(&sink, *t, m.Path("tenant")).value_or(spec.tenant);
      // The model is a file in the tenant's shared directory.
      if (std::optional<YAML::Node> model = m.Get("model", Need::kRequired))
        spec.model = internal::ReadSharedPath(&sink, *model, m.Path("model"), &spec.shared_paths)
                         .value_or("");
      if (std::optional<YAML::Node> token = m.Get("token", Need::kOptional)) {
        if (token->IsMap()) {  // token: {secret: NAME}
          spec.token_secret = internal::ReadSecretRef(&sink, *token, m.Path("token")).value_or("");
        } else {
          spec.token = internal::ReadString(&sink, *token, m.Path("token")).value_or("");
        }
      }
      if (std::optional<YAML::Node> r = m.Get("replicas", Need::kOptional)) {
        if (r->IsMap()) {
          MapReader rm(&sink, *r, m.Path("replicas"), {"min", "max"});
          if (rm.ok()) {
            std::optional<int64_t> lo = rm.Int("min", Need::kRequired, 0, 1000);
            std::optional<int64_t> hi = rm.Int("max", Need::kRequired, 1, 1000);
            if (lo && hi && *lo > *hi) rm.Error("max", "max is below min");
            spec.min_replicas = static_cast<int32_t>(lo.value_or(1));
            spec.max_replicas = static_cast<int32_t>(hi.value_or(1));
          }
        } else {
          std::optional<int64_t> n = m.Int("replicas", Need::kRequired, 0, 1000);
          spec.min_replicas = spec.max_replicas = static_cast<int32_t>(n.value_or(1));
        }
      }
      if (std::optional<YAML::Node> sh = m.Get("shape", Need::kOptional)) {
        MapReader sm(&sink, *sh, m.Path("shape"), {"cpu", "memory", "gpus"});
        if (sm.ok()) {
          spec.cpu_milli = sm.Cpu("cpu", Need::kOptional, false).value_or(spec.cpu_milli);
          spec.memory_mib = sm.Memory("memory", Need::kOptional, false).value_or(spec.memory_mib);
          spec.gpus = static_cast<int32_t>(sm.Int("gpus", Need::kOptional, 0, 64).value_or(0));
        }
      }
      if (std::optional<YAML::Node> regions = m.Get("regions", Need::kOptional)) {
        std::string path = m.Path("regions");
        if (internal::CheckSequence(&sink, *regions, path)) {
          size_t i = 0;
          for (const YAML::Node& item : *regions) {
            std::string ip = internal::IndexPath(path, i++);
            EndpointRegion er;
            if (item.IsMap()) {
              MapReader rm(&sink, item, ip, {"region", "weight"});
              if (!rm.ok()) continue;
              er.name = rm.Name("region", Need::kRequired).value_or("");
              er.weight = rm.Number("weight", Need::kOptional, internal::kPositive).value_or(1);
            } else {
              er.name = internal::ReadName(&sink, item, ip).value_or("");
            }
            if (er.name.empty()) continue;
            for (const EndpointRegion& o : spec.regions)
              if (o.name == er.name)
                sink.Add(item.Mark(), ip,
                         absl::StrCat("region ", QuoteInput(er.name, 64), " is listed twice"));
            spec.regions.push_back(er);
          }
        }
      }
      if (std::optional<YAML::Node> a = m.Get("autoscale", Need::kOptional)) {
        MapReader am(&sink, *a, m.Path("autoscale"),
                     {"target_in_flight", "scale_up_delay", "scale_down_delay"});
        if (am.ok()) {
          spec.target_in_flight = am.Number("target_in_flight", Need::kOptional, internal::kPositive)
                                      .value_or(spec.target_in_flight);
          spec.scale_up_delay_s =
              am.Duration("scale_up_delay", Need::kOptional, true).value_or(spec.scale_up_delay_s);
          spec.scale_down_delay_s = am.Duration("scale_down_delay", Need::kOptional, true)
                                        .value_or(spec.scale_down_delay_s);
        }
        if (spec.min_replicas == spec.max_replicas)
          m.Error("autoscale", "autoscale needs replicas: {min: N, max: M} with M > N");
      }
      spec.min_ready_s = m.Duration("min_ready", Need::kOptional, true).value_or(spec.min_ready_s);
    }
  }
  absl::Status st = sink.Finish(diags);
  if (!st.ok()) return st;
  return spec;
}

absl::StatusOr<std::string> ReplaceEndpointToken(std::string_view text, const std::string& secret) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("spec: ", e.what()));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError("spec: expected a mapping");
  YAML::Node ref(YAML::NodeType::Map);
  ref["secret"] = secret;
  root["token"] = ref;
  YAML::Emitter out;
  out << root;
  if (!out.good()) return absl::InternalError(absl::StrCat("spec: ", out.GetLastError()));
  return std::string(out.c_str());
}

}  // namespace meridian::spec
