#pragma once
namespace moejit {
inline constexpr const char* kVersion = "0.1.0";
}
