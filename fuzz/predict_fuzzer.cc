// libFuzzer target for the model server's request body (outside input:
// POST /v1/predict). Each input is parsed by ParsePredictBody as is, and as
// the body of {"input": ...} and {"inputs": ...} wrappers, for a model of a
// width taken from the first byte. Invariants checked: no crash, no escaping
// exception, a failure is a 400 or 413 with a message whose error JSON
// serialises, and a success has rows x width finite values within float
// range. Seeds: fuzz/corpus/predict_fuzzer/ (the bodies that crashed the
// server: 1e400, a 400-digit integer, a lone 0xff byte).
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "serve/predict_request.h"

namespace {

void Require(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "predict fuzzer invariant broken: %s\n", what);
    std::abort();
  }
}

void Check(std::string_view body, size_t width, size_t max_batch) {
  meridian::serve::PredictParse p = meridian::serve::ParsePredictBody(body, width, max_batch);
  if (!p.ok()) {
    Require(p.status == 400 || p.status == 413, "failure is not 400 or 413");
    Require(!p.error.empty(), "failure without a message");
    nlohmann::json back =
        nlohmann::json::parse(meridian::serve::ErrorJson(p.error), nullptr, false);
    Require(back.is_object() && back.contains("error"), "error JSON does not parse back");
    return;
  }
  Require(p.input.rows >= 1 && p.input.rows <= max_batch, "row count out of range");
  Require(p.input.cols == width, "wrong width");
  Require(p.input.values.size() == p.input.rows * p.input.cols, "values != rows x cols");
  for (float v : p.input.values)
    Require(std::isfinite(v) && std::fabs(v) <= FLT_MAX, "a value is not finite");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t width = size > 0 ? 1 + data[0] % 8 : 1;
  Check(text, width, 16);
  Check(text, 64, 4096);
  std::string one = "{\"input\": " + std::string(text) + "}";
  Check(one, width, 16);
  std::string many = "{\"inputs\": [" + std::string(text) + "]}";
  Check(many, width, 16);
  return 0;
}
