// Fused CPU kernels of the video metrics (YouTube-VIS track IoU, DAVIS boundary F), with CUDA dispatch when built
// with -DWITH_CUDA. Both return exact integer counts, so they agree bit for bit with the PyTorch formulations in
// omg_eval/kernels/video_overlap.py and omg_eval/kernels/boundary_f.py.
#include "coco_rle.h"

#include <torch/extension.h>
#include <pybind11/stl.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>
#include "../../../omg_common/csrc/omg_check.h"  // OMG_CHECK: error messages that cannot crash

#ifdef WITH_CUDA
torch::Tensor track_intersections_cuda(const torch::Tensor& pred, const torch::Tensor& gt);
torch::Tensor boundary_match_counts_cuda(const torch::Tensor& fg, const torch::Tensor& gt, int64_t radius);
#endif

namespace {

// Packs n bytes holding 0/1 into ceil(n / 64) words: bit i of word k is byte 64 * k + i. Popcounts over packed words
// then count 64 pixels per instruction.
void pack_bits(const uint8_t* bytes, int64_t n, uint64_t* words) {
  // Multiplying eight 0/1 bytes by this constant gathers them, without carries, into the top byte (byte i -> bit i).
  constexpr uint64_t kGather = 0x0102040810204080ULL;
  const int64_t full_words = n / 64;
  for (int64_t k = 0; k < full_words; ++k) {
    const uint8_t* block = bytes + 64 * k;
    uint64_t word = 0;
    for (int part = 0; part < 8; ++part) {
      uint64_t eight;
      std::memcpy(&eight, block + 8 * part, 8);
      word |= ((eight * kGather) >> 56) << (8 * part);
    }
    words[k] = word;
  }
  if (n % 64 != 0) {
    uint64_t word = 0;
    for (int64_t i = 64 * full_words; i < n; ++i) word |= static_cast<uint64_t>(bytes[i] != 0) << (i - 64 * full_words);
    words[full_words] = word;
  }
}

// Work below this many pixel operations (a few ms) runs inline: entering a parallel region costs more than it saves
// on small inputs, and far more on a machine whose cores are busy with other processes.
constexpr int64_t kSerialWork = 1 << 23;

int64_t grain_for(int64_t items, int64_t work_per_item) {
  return std::max<int64_t>(1, kSerialWork / std::max<int64_t>(1, work_per_item));
}

void check_masks(const torch::Tensor& masks, const char* name) {
  OMG_CHECK(masks.dim() == 2, name, " must be 2-D (tracks x pixels), got ", masks.dim(), " dimensions");
  OMG_CHECK(masks.scalar_type() == torch::kBool, name, " must be a bool tensor");
}

torch::Tensor track_intersections_cpu(const torch::Tensor& pred, const torch::Tensor& gt) {
  const int64_t num_pred = pred.size(0), num_gt = gt.size(0), num_pixels = pred.size(1);
  const int64_t num_words = (num_pixels + 63) / 64;
  auto pred_bytes = pred.contiguous();
  auto gt_bytes = gt.contiguous();
  const uint8_t* pred_data = reinterpret_cast<const uint8_t*>(pred_bytes.data_ptr<bool>());
  const uint8_t* gt_data = reinterpret_cast<const uint8_t*>(gt_bytes.data_ptr<bool>());
  // (D + G) x words: every track packed once, then every pair costs num_words AND + popcount.
  std::vector<uint64_t> packed(static_cast<size_t>((num_pred + num_gt) * num_words));
  at::parallel_for(0, num_pred + num_gt, grain_for(num_pred + num_gt, num_pixels), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const uint8_t* source = row < num_pred ? pred_data + row * num_pixels : gt_data + (row - num_pred) * num_pixels;
      pack_bits(source, num_pixels, packed.data() + row * num_words);
    }
  });
  auto intersections = torch::zeros({num_pred, num_gt}, torch::kInt64);
  int64_t* out = intersections.data_ptr<int64_t>();
  at::parallel_for(0, num_pred * num_gt, grain_for(num_pred * num_gt, num_words * 8), [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const uint64_t* pred_words = packed.data() + (pair / num_gt) * num_words;
      const uint64_t* gt_words = packed.data() + (num_pred + pair % num_gt) * num_words;
      int64_t count = 0;
      for (int64_t k = 0; k < num_words; ++k) count += __builtin_popcountll(pred_words[k] & gt_words[k]);
      out[pair] = count;
    }
  });
  return intersections;
}

// DAVIS's seg2bmap: a pixel is on the boundary when it differs from its east, south or south-east neighbour (pixels
// past the border count as background), except that the last row only looks east, the last column only looks south
// and the bottom-right pixel is never a boundary.
void boundary_map(const uint8_t* seg, int64_t height, int64_t width, uint8_t* bmap) {
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      const uint8_t here = seg[y * width + x] != 0;
      const uint8_t east = x + 1 < width ? seg[y * width + x + 1] != 0 : 0;
      const uint8_t south = y + 1 < height ? seg[(y + 1) * width + x] != 0 : 0;
      const uint8_t south_east = (x + 1 < width && y + 1 < height) ? seg[(y + 1) * width + x + 1] != 0 : 0;
      uint8_t value;
      if (y == height - 1 && x == width - 1) {
        value = 0;
      } else if (x == width - 1) {
        value = here ^ south;
      } else if (y == height - 1) {
        value = here ^ east;
      } else {
        value = (here ^ east) | (here ^ south) | (here ^ south_east);
      }
      bmap[y * width + x] = value;
    }
  }
}

// Row-wise prefix sums (height x (width + 1)) so that "any boundary pixel in row y between x0 and x1" is O(1).
void row_prefix_sums(const uint8_t* bmap, int64_t height, int64_t width, int32_t* prefix) {
  for (int64_t y = 0; y < height; ++y) {
    int32_t* row = prefix + y * (width + 1);
    row[0] = 0;
    for (int64_t x = 0; x < width; ++x) row[x + 1] = row[x] + bmap[y * width + x];
  }
}

// Counts the pixels of `source` that have a pixel of `target` within the disk, i.e. sum(source & dilate(target)).
int64_t count_matches(const uint8_t* source, const int32_t* target_prefix, int64_t height, int64_t width,
                      const std::vector<int64_t>& half_widths) {
  const int64_t radius = static_cast<int64_t>(half_widths.size()) - 1;
  int64_t matches = 0;
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      if (!source[y * width + x]) continue;
      for (int64_t dy = -radius; dy <= radius; ++dy) {
        const int64_t yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        const int64_t half = half_widths[dy < 0 ? -dy : dy];
        const int64_t x0 = std::max<int64_t>(0, x - half), x1 = std::min<int64_t>(width - 1, x + half);
        const int32_t* row = target_prefix + yy * (width + 1);
        if (row[x1 + 1] - row[x0] > 0) {
          ++matches;
          break;
        }
      }
    }
  }
  return matches;
}

// Half width of each row of skimage.morphology.disk(radius): offsets with dx^2 + dy^2 <= radius^2.
std::vector<int64_t> disk_half_widths(int64_t radius) {
  std::vector<int64_t> half_widths(radius + 1);
  for (int64_t dy = 0; dy <= radius; ++dy) {
    int64_t half = 0;
    while ((half + 1) * (half + 1) + dy * dy <= radius * radius) ++half;
    half_widths[dy] = half;
  }
  return half_widths;
}

// Scratch buffers of one thread, reused across items.
struct BoundaryScratch {
  std::vector<uint8_t> fg_bmap, gt_bmap;
  std::vector<int32_t> fg_prefix, gt_prefix;
  BoundaryScratch(int64_t height, int64_t width)
      : fg_bmap(height * width), gt_bmap(height * width), fg_prefix(height * (width + 1)), gt_prefix(height * (width + 1)) {}
};

// [n_fg, n_gt, fg_match, gt_match] of one pair of 0/1 masks.
void boundary_counts(const uint8_t* fg, const uint8_t* gt, int64_t height, int64_t width,
                     const std::vector<int64_t>& half_widths, BoundaryScratch& scratch, int64_t* row) {
  boundary_map(fg, height, width, scratch.fg_bmap.data());
  boundary_map(gt, height, width, scratch.gt_bmap.data());
  row_prefix_sums(scratch.fg_bmap.data(), height, width, scratch.fg_prefix.data());
  row_prefix_sums(scratch.gt_bmap.data(), height, width, scratch.gt_prefix.data());
  row[0] = 0;
  row[1] = 0;
  for (int64_t y = 0; y < height; ++y) {
    row[0] += scratch.fg_prefix[y * (width + 1) + width];
    row[1] += scratch.gt_prefix[y * (width + 1) + width];
  }
  row[2] = count_matches(scratch.fg_bmap.data(), scratch.gt_prefix.data(), height, width, half_widths);
  row[3] = count_matches(scratch.gt_bmap.data(), scratch.fg_prefix.data(), height, width, half_widths);
}

torch::Tensor boundary_match_counts_cpu(const torch::Tensor& fg, const torch::Tensor& gt, int64_t radius) {
  const int64_t batch = fg.size(0), height = fg.size(1), width = fg.size(2);
  auto fg_bytes = fg.contiguous();
  auto gt_bytes = gt.contiguous();
  const uint8_t* fg_data = reinterpret_cast<const uint8_t*>(fg_bytes.data_ptr<bool>());
  const uint8_t* gt_data = reinterpret_cast<const uint8_t*>(gt_bytes.data_ptr<bool>());
  const auto half_widths = disk_half_widths(radius);
  auto counts = torch::zeros({batch, 4}, torch::kInt64);
  int64_t* out = counts.data_ptr<int64_t>();
  const int64_t pixels = height * width;
  at::parallel_for(0, batch, grain_for(batch, pixels * 4), [&](int64_t begin, int64_t end) {
    BoundaryScratch scratch(height, width);
    for (int64_t item = begin; item < end; ++item) {
      boundary_counts(fg_data + item * pixels, gt_data + item * pixels, height, width, half_widths, scratch,
                      out + item * 4);
    }
  });
  return counts;
}

// Everything DAVIS needs from one sequence in one pass per (object, frame): object k's masks are the pixels whose id
// equals k, so void (255) and ids above num_objects never belong to an object and need no cleaning beforehand.
torch::Tensor davis_object_counts_cpu(const torch::Tensor& pred_ids, const torch::Tensor& gt_ids, int64_t num_objects,
                                      int64_t radius) {
  const int64_t frames = pred_ids.size(0), height = pred_ids.size(1), width = pred_ids.size(2);
  const int64_t pixels = height * width;
  auto pred = pred_ids.contiguous();
  auto gt = gt_ids.contiguous();
  const uint8_t* pred_data = pred.data_ptr<uint8_t>();
  const uint8_t* gt_data = gt.data_ptr<uint8_t>();
  const auto half_widths = disk_half_widths(radius);
  auto counts = torch::zeros({num_objects, frames, 6}, torch::kInt64);
  int64_t* out = counts.data_ptr<int64_t>();
  at::parallel_for(0, num_objects * frames, grain_for(num_objects * frames, pixels * 6), [&](int64_t begin, int64_t end) {
    BoundaryScratch scratch(height, width);
    std::vector<uint8_t> fg_mask(pixels), gt_mask(pixels);
    for (int64_t item = begin; item < end; ++item) {
      const uint8_t object = static_cast<uint8_t>(item / frames + 1);
      const int64_t frame = item % frames;
      const uint8_t* pred_frame = pred_data + frame * pixels;
      const uint8_t* gt_frame = gt_data + frame * pixels;
      int64_t intersection = 0, either = 0;
      for (int64_t i = 0; i < pixels; ++i) {
        const uint8_t in_pred = pred_frame[i] == object, in_gt = gt_frame[i] == object;
        fg_mask[i] = in_pred;
        gt_mask[i] = in_gt;
        intersection += in_pred & in_gt;
        either += in_pred | in_gt;
      }
      int64_t* row = out + item * 6;
      row[0] = intersection;
      row[1] = either;
      boundary_counts(fg_mask.data(), gt_mask.data(), height, width, half_widths, scratch, row + 2);
    }
  });
  return counts;
}

// Decodes every string with the shared omg_coco_rle decoder (an empty string is an absent frame: no runs); a malformed
// one is a ValueError naming its position in `strings` (`what` says which list).
std::vector<std::vector<int64_t>> decode_rle_strings(const std::vector<std::string>& strings, int64_t num_pixels,
                                                     const char* what) {
  std::vector<std::vector<int64_t>> decoded(strings.size());
  for (size_t i = 0; i < strings.size(); ++i) {
    if (strings[i].empty()) continue;  // an absent frame
    const auto result = omg_coco_rle::decode_rle_string(strings[i], num_pixels, decoded[i]);
    OMG_CHECK_VALUE(result.problem == omg_coco_rle::Problem::kNone, what, " RLE string ", i, " is malformed: ",
                    omg_coco_rle::describe(result, strings[i], num_pixels));
  }
  return decoded;
}

}  // namespace

// Mask areas of COCO compressed RLE strings, each checked by the shared decoder (num_pixels >= 0: the runs must
// cover exactly that many pixels; an empty string is malformed here). Returns (areas (N,) int64, the index of the
// first malformed string or -1, what is wrong with it); the Python side names the video, track and frame.
std::tuple<torch::Tensor, int64_t, std::string> rle_string_areas(const std::vector<std::string>& strings,
                                                                 int64_t num_pixels) {
  const int64_t count = static_cast<int64_t>(strings.size());
  auto areas = torch::zeros({count}, torch::kInt64);
  int64_t* out = areas.data_ptr<int64_t>();
  std::vector<int64_t> runs;
  for (int64_t i = 0; i < count; ++i) {
    const auto result = omg_coco_rle::decode_rle_string(strings[i], num_pixels, runs);
    if (result.problem != omg_coco_rle::Problem::kNone) {
      return {areas.zero_(), i, omg_coco_rle::describe(result, strings[i], num_pixels)};
    }
    out[i] = omg_coco_rle::rle_area(runs.data(), static_cast<int64_t>(runs.size()));
  }
  return {areas, -1, std::string()};
}

torch::Tensor rle_track_intersections(const std::vector<std::string>& pred_rles, const std::vector<std::string>& gt_rles,
                                      int64_t num_frames, const torch::Tensor& pairs, int64_t num_pixels) {
  OMG_CHECK(num_frames > 0, "num_frames must be positive");
  OMG_CHECK(pred_rles.size() % num_frames == 0 && gt_rles.size() % num_frames == 0,
            "pred_rles and gt_rles must hold num_frames strings per track");
  OMG_CHECK(pairs.dim() == 2 && pairs.size(1) == 2 && pairs.scalar_type() == torch::kInt64,
            "pairs must be a (P, 2) int64 tensor of (pred track, gt track)");
  const int64_t num_pred = pred_rles.size() / num_frames, num_gt = gt_rles.size() / num_frames;
  auto pairs_cpu = pairs.contiguous().cpu();
  const int64_t* pair_data = pairs_cpu.data_ptr<int64_t>();
  const int64_t num_pairs = pairs_cpu.size(0);
  for (int64_t p = 0; p < num_pairs; ++p) {
    OMG_CHECK(pair_data[2 * p] >= 0 && pair_data[2 * p] < num_pred && pair_data[2 * p + 1] >= 0 &&
                  pair_data[2 * p + 1] < num_gt,
              "pair ", p, " indexes a track that does not exist");
  }
  // Decode every frame string once (an empty string is an absent frame), then merge runs pair by pair.
  const auto pred_counts = decode_rle_strings(pred_rles, num_pixels, "predicted");
  const auto gt_counts = decode_rle_strings(gt_rles, num_pixels, "ground-truth");
  auto intersections = torch::zeros({num_pairs}, torch::kInt64);
  int64_t* out = intersections.data_ptr<int64_t>();
  at::parallel_for(0, num_pairs, grain_for(num_pairs, 64 * num_frames), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t d = pair_data[2 * p], g = pair_data[2 * p + 1];
      int64_t total = 0;
      for (int64_t t = 0; t < num_frames; ++t) {
        const auto& a = pred_counts[d * num_frames + t];
        const auto& b = gt_counts[g * num_frames + t];
        total += omg_coco_rle::rle_intersection(a.data(), static_cast<int64_t>(a.size()), b.data(),
                                                static_cast<int64_t>(b.size()));
      }
      out[p] = total;
    }
  });
  return intersections;
}

torch::Tensor track_intersections(const torch::Tensor& pred, const torch::Tensor& gt) {
  check_masks(pred, "pred");
  check_masks(gt, "gt");
  OMG_CHECK(pred.size(1) == gt.size(1), "pred and gt must have the same number of pixels, got ", pred.size(1),
            " and ", gt.size(1));
  OMG_CHECK(pred.device() == gt.device(), "pred and gt must be on the same device");
  if (pred.is_cuda()) {
#ifdef WITH_CUDA
    return track_intersections_cuda(pred.contiguous(), gt.contiguous());
#else
    OMG_CHECK(false, "omg video eval extension was built without CUDA; move the masks to the CPU");
#endif
  }
  return track_intersections_cpu(pred, gt);
}

torch::Tensor boundary_match_counts(const torch::Tensor& fg, const torch::Tensor& gt, int64_t radius) {
  OMG_CHECK(fg.dim() == 3 && fg.sizes() == gt.sizes(), "fg and gt must both be (B, H, W)");
  OMG_CHECK(fg.scalar_type() == torch::kBool && gt.scalar_type() == torch::kBool, "fg and gt must be bool tensors");
  OMG_CHECK(radius >= 0, "radius must be non-negative");
  OMG_CHECK(fg.device() == gt.device(), "fg and gt must be on the same device");
  if (fg.is_cuda()) {
#ifdef WITH_CUDA
    return boundary_match_counts_cuda(fg.contiguous(), gt.contiguous(), radius);
#else
    OMG_CHECK(false, "omg video eval extension was built without CUDA; move the masks to the CPU");
#endif
  }
  return boundary_match_counts_cpu(fg, gt, radius);
}

torch::Tensor davis_object_counts(const torch::Tensor& pred_ids, const torch::Tensor& gt_ids, int64_t num_objects,
                                  int64_t radius) {
  OMG_CHECK(pred_ids.dim() == 3 && pred_ids.sizes() == gt_ids.sizes(), "pred_ids and gt_ids must both be (T, H, W)");
  OMG_CHECK(pred_ids.scalar_type() == torch::kUInt8 && gt_ids.scalar_type() == torch::kUInt8,
            "pred_ids and gt_ids must be uint8 id maps");
  OMG_CHECK(num_objects >= 0 && num_objects < 255, "num_objects must be in [0, 254]");
  OMG_CHECK(radius >= 0, "radius must be non-negative");
  OMG_CHECK(!pred_ids.is_cuda() && !gt_ids.is_cuda(), "davis_object_counts runs on CPU tensors");
  return davis_object_counts_cpu(pred_ids, gt_ids, num_objects, radius);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("davis_object_counts", &davis_object_counts,
        "(T, H, W) uint8 pred and gt id maps, K, radius -> (K, T, 6) int64 [intersection, union, n_fg, n_gt, "
        "fg_match, gt_match] per object and frame");
  m.def("rle_track_intersections", &rle_track_intersections,
        "COCO compressed RLE strings of D and G tracks (num_frames each, empty = absent), (P, 2) pairs -> (P,) int64 "
        "pixel intersections summed over frames; num_pixels >= 0 checks that every present frame covers that many",
        py::arg("pred_rles"), py::arg("gt_rles"), py::arg("num_frames"), py::arg("pairs"), py::arg("num_pixels") = -1);
  m.def("rle_string_areas", &rle_string_areas,
        "mask areas of COCO compressed RLE strings -> (areas, index of the first malformed string or -1, its problem)",
        py::arg("strings"), py::arg("num_pixels") = -1);
  m.def("track_intersections", &track_intersections, "(D, N) x (G, N) bool -> (D, G) int64 pixel intersections");
  m.def("boundary_match_counts", &boundary_match_counts,
        "(B, H, W) x (B, H, W) bool, radius -> (B, 4) int64 [n_fg, n_gt, fg_match, gt_match]");
}
