#include "spec/quote.h"

#include <cstdint>
#include <cstdio>

namespace meridian::spec {

namespace {

// Length of the well-formed UTF-8 sequence at text[i] and its code point;
// 0 when the bytes there are not one.
size_t DecodeUtf8(std::string_view text, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = b(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0) {
    n = 2, v = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, v = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

bool IsBidiControl(uint32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E ||
         cp == 0x200F || cp == 0x061C;
}

void AppendHex(std::string* out, const char* format, uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), format, static_cast<unsigned>(v));
  out->append(buf);
}

}  // namespace

bool IsValidUtf8(std::string_view text, size_t* bad_offset) {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t n = DecodeUtf8(text, i, &cp);
    if (n == 0) {
      if (bad_offset != nullptr) *bad_offset = i;
      return false;
    }
    i += n;
  }
  return true;
}

std::string QuoteInput(std::string_view text, size_t max) {
  std::string out = "'";
  size_t i = 0;
  while (i < text.size()) {
    uint32_t cp = 0;
    size_t n = DecodeUtf8(text, i, &cp);
    if (i + (n == 0 ? 1 : n) > max) break;
    if (n == 0) {
      AppendHex(&out, "\\x%02X", static_cast<unsigned char>(text[i]));
      i += 1;
      continue;
    }
    switch (cp) {
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\0':
        out += "\\0";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\'':
        out += "\\'";
        break;
      default:
        if (cp < 0x20 || cp == 0x7F) {
          AppendHex(&out, "\\x%02X", cp);
        } else if ((cp >= 0x80 && cp <= 0x9F) || IsBidiControl(cp)) {
          AppendHex(&out, "\\u{%04X}", cp);
        } else {
          out.append(text.substr(i, n));
        }
    }
    i += n;
  }
  out += "'";
  if (i < text.size()) {
    out += "\u2026(";
    out += std::to_string(text.size());
    out += " bytes)";
  }
  return out;
}

}  // namespace meridian::spec
