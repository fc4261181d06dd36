// OMG_CHECK(condition, pieces...): TORCH_CHECK with the message assembled here (numbers through std::to_string),
// never by inserting numbers into a std::ostream inside the extension.
//
// Why: where the C++ toolchain links libstdc++ statically into an extension (seen with GCC 13 on an Ubuntu 24.04
// image: the built .so needs no libstdc++.so and carries its own copy of the stream code), that copy's locale is never
// initialised, and formatting a number into a stream crashes. TORCH_CHECK(ok, "image ", b, " ...") then segfaulted
// instead of raising. Strings pass through the stream untouched, which works there.
#pragma once

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include <string>
#include <type_traits>

namespace omg_check {

inline std::string piece(const char* text) { return text; }
inline std::string piece(const std::string& text) { return text; }
inline std::string piece(const c10::Device& device) { return device.str(); }
template <typename Number, typename = std::enable_if_t<std::is_integral_v<Number>>>
std::string piece(Number number) {
  return std::to_string(number);
}

template <typename... Pieces>
std::string message(const Pieces&... pieces) {
  std::string text;
  ((text += piece(pieces)), ...);
  return text;
}

}  // namespace omg_check

#define OMG_CHECK(condition, ...) TORCH_CHECK(condition, ::omg_check::message(__VA_ARGS__))
#define OMG_CHECK_VALUE(condition, ...) TORCH_CHECK_VALUE(condition, ::omg_check::message(__VA_ARGS__))
