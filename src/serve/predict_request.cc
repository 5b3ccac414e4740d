#include "serve/predict_request.h"

#include <cfloat>
#include <cmath>
#include <exception>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace meridian::serve {
namespace {

using Json = nlohmann::json;

// nlohmann's DOM builder with exceptions off, plus what it lacks: the text
// of the parse error (the exception object is handed to us, never thrown)
// and a nesting limit (a megabyte of `[` would otherwise build a value a
// megabyte deep).
class Sax {
 public:
  explicit Sax(Json* root) : dom_(*root, /*allow_exceptions=*/false) {}
  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const Json::string_t& s) {
    return dom_.number_float(v, s);
  }
  bool string(Json::string_t& v) { return dom_.string(v); }
  bool binary(Json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return Deeper() && dom_.start_object(n); }
  bool key(Json::string_t& v) { return dom_.key(v); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return Deeper() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    error_ = ex.what();
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  bool Deeper() {
    if (++depth_ <= kMaxJsonDepth) return true;
    error_ = absl::StrCat("JSON nested deeper than ", kMaxJsonDepth, " levels");
    return false;
  }
  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  int depth_ = 0;
  std::string error_;
};

PredictParse Fail(int status, std::string message) {
  PredictParse p;
  p.status = status;
  p.error = std::move(message);
  return p;
}

}  // namespace

std::string Printable(std::string_view text, size_t max_len) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string ErrorJson(std::string_view message) {
  return Json{{"error", Printable(message, 1000)}}.dump();
}

PredictParse ParsePredictBody(std::string_view body, size_t width, size_t max_batch) {
  Json req;
  Sax sax(&req);
  bool parsed = false;
  try {  // nothing below should throw with exceptions off; never let it escape
    parsed = Json::sax_parse(body.begin(), body.end(), &sax, Json::input_format_t::json,
                             /*strict=*/true);
  } catch (const std::exception& e) {
    return Fail(400, absl::StrCat("malformed JSON: ", Printable(e.what())));
  }
  if (!parsed || req.is_discarded())
    return Fail(400, absl::StrCat("malformed JSON: ",
                                  Printable(sax.error().empty() ? "not JSON" : sax.error())));
  std::vector<const Json*> rows;
  if (req.is_object() && req.contains("inputs") && req["inputs"].is_array()) {
    for (const Json& r : req["inputs"]) rows.push_back(&r);
  } else if (req.is_object() && req.contains("input")) {
    rows.push_back(&req["input"]);
  } else {
    return Fail(400, "expected {\"input\": [numbers]} or {\"inputs\": [[numbers], ...]}");
  }
  if (rows.empty()) return Fail(400, "\"inputs\" is empty");
  if (rows.size() > max_batch)
    return Fail(413, absl::StrCat(rows.size(), " inputs; at most ", max_batch, " per request"));
  PredictParse out;
  out.input.rows = rows.size();
  out.input.cols = width;
  out.input.values.reserve(rows.size() * width);
  for (size_t i = 0; i < rows.size(); ++i) {
    const Json& r = *rows[i];
    if (!r.is_array()) return Fail(400, absl::StrCat("input ", i, " is not an array of numbers"));
    if (r.size() != width)
      return Fail(400,
                  absl::StrCat("input ", i, " has ", r.size(), " values; the model takes ", width));
    for (size_t j = 0; j < width; ++j) {
      const Json& v = r[j];
      if (!v.is_number())
        return Fail(400, absl::StrCat("input ", i, " value ", j, " is not a number"));
      double d = v.get<double>();
      if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(FLT_MAX))
        return Fail(400, absl::StrCat("input ", i, " value ", j, " (", d,
                                      ") is out of range: values must be finite, |x| <= ",
                                      static_cast<double>(FLT_MAX)));
      out.input.values.push_back(static_cast<float>(d));
    }
  }
  return out;
}

}  // namespace meridian::serve
