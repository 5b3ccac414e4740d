// Quoting user input in error messages.
//
// Every message that repeats something a user sent (a name, a path, a spec
// value) goes through QuoteInput, so that a huge value cannot blow up an
// error past what gRPC carries back (a 9 kB name must still come back as
// NOT_FOUND, not RESOURCE_EXHAUSTED), and control characters, invalid UTF-8
// and bidirectional overrides cannot rewrite what a terminal shows. Pure;
// thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace meridian::spec {

// `'text'` with control characters (C0, DEL, C1), bidi controls, invalid
// UTF-8 bytes, `\` and `'` escaped (\n, \t, \r, \0, \xHH, \u{HHHH}, \\, \').
// Longer than `max` bytes: the first `max` bytes (cut at a character
// boundary), then `…(N bytes)` with N the full size.
std::string QuoteInput(std::string_view text, size_t max = 200);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code
// points above U+10FFFF). On false, *bad_offset (may be null) is the offset
// of the first bad byte.
bool IsValidUtf8(std::string_view text, size_t* bad_offset = nullptr);

}  // namespace meridian::spec
