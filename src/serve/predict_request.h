// The body of POST /v1/predict, parsed and checked without sockets (the
// model server calls it per request; fuzz/predict_fuzzer.cc drives it with
// arbitrary bytes).
//
//   {"input": [f, ...]}  or  {"inputs": [[f, ...], ...]}
//
// Parsing never throws: nlohmann-json runs in its SAX mode with exceptions
// off, so malformed JSON, invalid UTF-8, a number that overflows a double
// (`1e400`, a 400-digit integer) or nesting deeper than kMaxJsonDepth come
// back as an error naming the problem. Every value must be a number whose
// magnitude fits a float (a finite double above FLT_MAX, such as 1e39, is
// refused too: as a float it would be infinite). Thread-safe (no state).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::serve {

inline constexpr int kMaxJsonDepth = 32;

struct PredictInput {
  size_t rows = 0, cols = 0;
  std::vector<float> values;  // row-major, rows x cols, every one finite
};

// Either an input or why there is none: `status` 400 (bad input) or 413 (more
// than `max_batch` rows), with a message for the client in `error`.
struct PredictParse {
  int status = 200;
  std::string error;
  PredictInput input;
  bool ok() const { return status == 200; }
};

// Postcondition: ok() and input.rows in [1, max_batch], input.cols == width,
// every value finite with |v| <= FLT_MAX; or !ok() with a non-empty error.
PredictParse ParsePredictBody(std::string_view body, size_t width, size_t max_batch);

// {"error": message} as JSON text. Bytes that are not printable ASCII are
// written as \xNN, so a message quoting client input always serialises.
std::string ErrorJson(std::string_view message);

// `text` with every byte outside printable ASCII written as \xNN, cut to
// `max_len` bytes (then "...").
std::string Printable(std::string_view text, size_t max_len = 200);

}  // namespace meridian::serve
