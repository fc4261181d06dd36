// COCO run-length encodings, shared by both metric extensions (eval_kernels.cpp and video_eval.cpp): the one decoder
// of compressed RLE strings, and the area and intersection of decoded runs.
//
// Decoded runs are the `counts` of an uncompressed COCO RLE: lengths of alternating runs of 0 and 1 over the
// column-major pixels, starting with a (possibly empty) run of 0. Header only and free of torch, so that either
// extension can include it; the extensions turn a DecodeResult into a Python error (see describe()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace omg_coco_rle {

enum class Problem : uint8_t {
  kNone,
  kBadCharacter,     // a character outside the alphabet '0'..'o' (ASCII 48-111) that pycocotools writes
  kTruncated,        // the last character announces another 5-bit group, but the string ends
  kOverflow,         // a count needs more than 60 bits, or the runs add up past 2^63 - 1
  kNegativeRun,      // a run length decodes to a negative number
  kWrongPixelCount,  // the runs do not add up to the expected number of pixels (height x width)
};

struct DecodeResult {
  Problem problem = Problem::kNone;
  size_t position = 0;  // the character at which the offending count starts (the bad character itself for kBadCharacter)
  int64_t value = 0;    // kNegativeRun: the decoded run; kWrongPixelCount: the pixels the runs cover
};

// A count takes at most this many 5-bit groups (60 bits). pycocotools stores runs as 32-bit integers, so its strings
// never need more than 7; the limit keeps every shift below 64 and every count representable with its sign.
constexpr int kMaxGroups = 12;

// Run lengths of a COCO compressed RLE string, as pycocotools' rleFrString reads them: each count is written in
// 5-bit groups, least significant first, as characters from '0' (48); bit 0x20 of a character says another group
// follows, bit 0x10 of the last group is the sign; counts from the fourth on (index > 2) are stored as the difference
// to the count two places back. Unlike rleFrString (which reads past the end of a truncated string and shifts
// signed values by up to 64 bits), every malformed string is refused: on return, `runs` holds the runs decoded
// before the problem. expected_pixels >= 0 also requires the runs to cover exactly that many pixels.
inline DecodeResult decode_rle_string(const char* text, size_t size, int64_t expected_pixels,
                                      std::vector<int64_t>& runs) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  runs.clear();
  int64_t total = 0;
  size_t position = 0;
  while (position < size) {
    const size_t start = position;
    uint64_t bits = 0;
    int groups = 0;
    bool more = true;
    while (more) {
      if (position >= size) return {Problem::kTruncated, start, 0};
      if (groups == kMaxGroups) return {Problem::kOverflow, start, 0};
      const unsigned char character = static_cast<unsigned char>(text[position]);
      if (character < 48 || character > 111) return {Problem::kBadCharacter, position, 0};
      const uint64_t chunk = static_cast<uint64_t>(character - 48);
      bits |= (chunk & 0x1f) << (5 * groups);  // unsigned, and 5 * groups <= 55: no overflow, no UB
      more = (chunk & 0x20) != 0;
      ++position;
      ++groups;
      if (!more && (chunk & 0x10)) bits |= ~uint64_t{0} << (5 * groups);  // sign-extend; 5 * groups <= 60
    }
    // The 64 bits as a two's-complement number, without relying on the unsigned-to-signed conversion.
    int64_t count = (bits >> 63) ? -static_cast<int64_t>(~bits) - 1 : static_cast<int64_t>(bits);
    if (runs.size() > 2) {
      const int64_t base = runs[runs.size() - 2];  // >= 0 (checked when stored); |count| < 2^59
      if (count > 0 && base > kMax - count) return {Problem::kOverflow, start, 0};
      count += base;
    }
    if (count < 0) return {Problem::kNegativeRun, start, count};
    if (count > kMax - total) return {Problem::kOverflow, start, 0};
    total += count;
    runs.push_back(count);
  }
  if (expected_pixels >= 0 && total != expected_pixels) return {Problem::kWrongPixelCount, size, total};
  return {Problem::kNone, size, total};
}

inline DecodeResult decode_rle_string(const std::string& text, int64_t expected_pixels, std::vector<int64_t>& runs) {
  return decode_rle_string(text.data(), text.size(), expected_pixels, runs);
}

// One line naming what is wrong with a string whose decode_rle_string returned `result` (expected_pixels as given).
inline std::string describe(const DecodeResult& result, const std::string& text, int64_t expected_pixels) {
  const std::string at = "character " + std::to_string(result.position);
  switch (result.problem) {
    case Problem::kNone:
      return "well-formed";
    case Problem::kBadCharacter: {
      const unsigned char c = static_cast<unsigned char>(text[result.position]);
      const std::string shown = (c >= 32 && c < 127) ? "'" + std::string(1, static_cast<char>(c)) + "'"
                                                     : "byte " + std::to_string(static_cast<int>(c));
      return "invalid " + shown + " at " + at + "; compressed RLE strings use only the characters '0' to 'o'";
    }
    case Problem::kTruncated:
      return "truncated: the count starting at " + at + " ends with a continuation character (bit 0x20 set) but " +
             "the string ends there";
    case Problem::kOverflow:
      return "the run length starting at " + at + " overflows 64 bits (more than " + std::to_string(kMaxGroups) +
             " 5-bit groups, or runs adding up past 2^63 - 1)";
    case Problem::kNegativeRun:
      return "the run length starting at " + at + " decodes to " + std::to_string(result.value) +
             "; run lengths cannot be negative";
    case Problem::kWrongPixelCount:
      return "the runs cover " + std::to_string(result.value) + " pixels, not the " +
             std::to_string(expected_pixels) + " (height x width) of the image; check 'size' and 'counts'";
  }
  return "malformed";
}

// Pixels set in an RLE (the sum of its odd runs).
inline int64_t rle_area(const int64_t* runs, int64_t count) {
  int64_t area = 0;
  for (int64_t i = 1; i < count; i += 2) area += runs[i];
  return area;
}

// Pixels set in both RLEs (of one image size), merging the two run sequences; empty runs are allowed anywhere.
inline int64_t rle_intersection(const int64_t* a, int64_t a_count, const int64_t* b, int64_t b_count) {
  int64_t ia = 0, ib = 0;
  int64_t left_a = a_count ? a[0] : 0, left_b = b_count ? b[0] : 0;
  bool on_a = false, on_b = false;
  int64_t intersection = 0;
  while (ia < a_count && ib < b_count) {
    const int64_t step = left_a < left_b ? left_a : left_b;
    if (on_a && on_b) intersection += step;
    left_a -= step;
    left_b -= step;
    if (left_a == 0) {
      if (++ia < a_count) left_a = a[ia];
      on_a = !on_a;
    }
    if (left_b == 0) {
      if (++ib < b_count) left_b = b[ib];
      on_b = !on_b;
    }
  }
  return intersection;
}

}  // namespace omg_coco_rle
