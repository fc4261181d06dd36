// Fused CPU counting kernels of the evaluation harness (one extension for the whole family, built lazily by
// omg_core.ext_build.load_extension). Every function here has a pure-PyTorch twin in omg_eval/kernels/*.py that
// returns identical integers; the Python side checks argument shapes and dtypes before calling in.
//
//   segment_pairs_batch  one pass over each image: pixel counts of every (gt id, pred id) pair, via a hash table
//   confusion_matrix     histograms of (gt, pred) runs: one per thread for large maps, one per worker for batches
//   rle_encode / rle_iou COCO run-length encoding of binary masks (column-major) and IoU between two RLE sets

#include "coco_rle.h"

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>
#include "../../../omg_common/csrc/omg_check.h"  // OMG_CHECK: error messages that cannot crash

#ifdef WITH_CUDA
torch::Tensor confusion_matrix_cuda(const torch::Tensor& gt_labels, const torch::Tensor& pred_labels,
                                    int64_t num_classes, int64_t ignore_index);
#endif

namespace {

constexpr uint64_t kEmptySlot = ~uint64_t{0};

// Entering a parallel region costs microseconds on an idle machine but milliseconds when the cores are shared and a
// worker thread is descheduled; per-image calls of the AP kernels (a few dozen groups) therefore run inline, and only
// data-set-sized calls fan out.
constexpr int64_t kSmallWorkGrain = 256;

// Flag bytes the boundary scans test at once: segments are large, so most groups hold no boundary and cost one branch.
constexpr int64_t kGroup = 32;
static_assert(kGroup == 4 * sizeof(uint64_t), "the scans test a group as four 64-bit words");

// Calls on_flag(k) for every non-zero byte k of flags[0, length), in order.
template <typename OnFlag>
inline void for_each_flag(const uint8_t* flags, int64_t length, OnFlag&& on_flag) {
  int64_t k = 0;
  for (; k + kGroup <= length; k += kGroup) {
    uint64_t words[kGroup / 8];
    std::memcpy(words, flags + k, kGroup);
    if (!(words[0] | words[1] | words[2] | words[3])) continue;
    for (int64_t w = 0; w < kGroup / 8; ++w) {
      for (uint64_t word = words[w]; word;) {
        const int byte = __builtin_ctzll(word) >> 3;
        on_flag(k + 8 * w + byte);
        word &= ~(uint64_t{0xff} << (8 * byte));  // clear the whole byte: flags may be any non-zero value
      }
    }
  }
  for (; k < length; ++k) {
    if (flags[k]) on_flag(k);
  }
}

// Calls body(gt_ptr, pred_ptr) with the typed data of two integer maps (any pair of integer dtypes).
template <typename Body>
void with_label_types(const torch::Tensor& gt_labels, const torch::Tensor& pred_labels, Body&& body) {
  AT_DISPATCH_INTEGRAL_TYPES(gt_labels.scalar_type(), "label_map_gt", [&] {
    using gt_t = scalar_t;
    const gt_t* gt = gt_labels.data_ptr<gt_t>();
    AT_DISPATCH_INTEGRAL_TYPES(pred_labels.scalar_type(), "label_map_pred", [&] {
      body(gt, pred_labels.data_ptr<scalar_t>());
    });
  });
}

// Runs worker(next_image) on up to at::get_num_threads() threads; next_image() hands out 0 .. batch - 1 one at a
// time, then -1. A shared counter rather than fixed shares: on a shared machine one worker may get much less CPU than
// another, and a static split would leave the whole batch waiting for it.
template <typename Worker>
void share_images(int64_t batch, Worker&& worker) {
  std::atomic<int64_t> next{0};
  auto next_image = [&]() -> int64_t {
    const int64_t b = next++;
    return b < batch ? b : -1;
  };
  const int64_t workers = std::min<int64_t>(batch, at::get_num_threads());
  if (workers <= 1) {
    worker(next_image);
    return;
  }
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) worker(next_image);
  });
}

// Open-addressing hash table from a packed (gt id, pred id) key to a pixel count. Segment ids are below 2^31 so a key
// never equals kEmptySlot.
class PairCounter {
 public:
  PairCounter() : keys_(1024, kEmptySlot), counts_(1024, 0), size_(0) {}

  void add(uint64_t key, int64_t count) {
    if (2 * (size_ + 1) > keys_.size()) grow();
    insert(key, count);
  }

  // Entries sorted by key, i.e. by (gt id, pred id).
  std::vector<std::pair<uint64_t, int64_t>> sorted_entries() const {
    std::vector<std::pair<uint64_t, int64_t>> entries;
    entries.reserve(size_);
    for (size_t slot = 0; slot < keys_.size(); ++slot) {
      if (keys_[slot] != kEmptySlot) entries.emplace_back(keys_[slot], counts_[slot]);
    }
    std::sort(entries.begin(), entries.end());
    return entries;
  }

 private:
  static uint64_t mix(uint64_t key) {
    // splitmix64 finaliser: spreads neighbouring ids over the table.
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    key ^= key >> 31;
    return key;
  }

  void insert(uint64_t key, int64_t count) {
    const size_t mask = keys_.size() - 1;
    size_t slot = mix(key) & mask;
    while (keys_[slot] != kEmptySlot && keys_[slot] != key) slot = (slot + 1) & mask;
    if (keys_[slot] == kEmptySlot) {
      keys_[slot] = key;
      ++size_;
    }
    counts_[slot] += count;
  }

  void grow() {
    std::vector<uint64_t> old_keys(keys_.size() * 2, kEmptySlot);
    std::vector<int64_t> old_counts(counts_.size() * 2, 0);
    old_keys.swap(keys_);
    old_counts.swap(counts_);
    size_ = 0;
    for (size_t slot = 0; slot < old_keys.size(); ++slot) {
      if (old_keys[slot] != kEmptySlot) insert(old_keys[slot], old_counts[slot]);
    }
  }

  std::vector<uint64_t> keys_;
  std::vector<int64_t> counts_;
  size_t size_;
};

enum class Layout { kIds, kRgbInterleaved, kRgbPlanar };

// Reads segment id number `index` of a map: an integer id map, or a COCO panoptic RGB map (id = R + 256 G + 256^2 B)
// stored H x W x 3 (PIL) or as the H x W x 3 view of a 3 x H x W image (torchvision), so PNG pixels are counted
// without materialising an id map first.
template <typename scalar_t, Layout kLayout>
struct IdReader {
  const scalar_t* data;
  int64_t plane;  // pixels per channel plane (planar layout only)
  inline int64_t operator()(int64_t index) const {
    if constexpr (kLayout == Layout::kRgbInterleaved) {
      const scalar_t* pixel = data + 3 * index;
      return static_cast<int64_t>(pixel[0]) + 256 * static_cast<int64_t>(pixel[1]) +
             65536 * static_cast<int64_t>(pixel[2]);
    } else if constexpr (kLayout == Layout::kRgbPlanar) {
      return static_cast<int64_t>(data[index]) + 256 * static_cast<int64_t>(data[index + plane]) +
             65536 * static_cast<int64_t>(data[index + 2 * plane]);
    } else {
      return static_cast<int64_t>(data[index]);
    }
  }
  // The id in the form differs() compares against: the map's own integer type for id maps (no widening per pixel).
  inline auto native(int64_t id) const {
    if constexpr (kLayout == Layout::kIds) {
      return static_cast<scalar_t>(id);
    } else {
      return id;
    }
  }
  // Non-zero where the pixel's id differs from `value`, in the map's own width so 16 of them OR in a few vector ops.
  template <typename value_t>
  inline value_t bits(int64_t index, value_t value) const {
    if constexpr (kLayout == Layout::kIds) {
      return data[index] ^ value;
    } else {
      return (*this)(index) ^ value;
    }
  }
  template <typename value_t>
  inline bool differs(int64_t index, value_t value) const {
    if constexpr (kLayout == Layout::kIds) {
      return data[index] != value;
    } else {
      return (*this)(index) != value;
    }
  }
};

// Pixels sharing the current run's pair, from `index` on. Blocks of 16 pixels are compared branch-free in the maps'
// own integer width (the compiler vectorises the OR-reduction); segments are large, so most of an image is skipped a
// block at a time, and only the block holding the run's end is searched pixel by pixel.
template <typename gt_reader, typename pred_reader>
inline int64_t run_end(const gt_reader& gt, const pred_reader& pred, int64_t index, int64_t num_pixels,
                       int64_t gt_id, int64_t pred_id) {
  constexpr int64_t kBlock = 16;
  const auto gt_value = gt.native(gt_id);
  const auto pred_value = pred.native(pred_id);
  while (index + kBlock <= num_pixels) {
    int64_t differs = 0;
    for (int64_t k = 0; k < kBlock; ++k) differs |= gt.bits(index + k, gt_value) | pred.bits(index + k, pred_value);
    if (differs) break;
    index += kBlock;
  }
  while (index < num_pixels && !gt.differs(index, gt_value) && !pred.differs(index, pred_value)) ++index;
  return index;
}

template <typename gt_reader, typename pred_reader>
bool count_pairs(const gt_reader& gt, const pred_reader& pred, int64_t num_pixels, PairCounter& counter) {
  bool ids_valid = true;
  int64_t index = 0;
  while (index < num_pixels) {
    const int64_t gt_id = gt(index);
    const int64_t pred_id = pred(index);
    const int64_t end = run_end(gt, pred, index + 1, num_pixels, gt_id, pred_id);
    ids_valid &= (gt_id >= 0) & (gt_id <= INT32_MAX) & (pred_id >= 0) & (pred_id <= INT32_MAX);
    counter.add((static_cast<uint64_t>(gt_id & 0x7fffffff) << 32) | static_cast<uint64_t>(pred_id & 0x7fffffff),
                end - index);
    index = end;
  }
  return ids_valid;
}

// Flag every pixel where either id changes from its left neighbour in a first, fully vectorisable pass over a chunk
// (`mark(first, length, changes)`), then walk the flags a machine word at a time: only run starts do scalar work.
// `ids(index)` returns the (gt id, pred id) of a pixel.
template <typename Mark, typename Ids>
bool count_pairs_flagged(int64_t num_pixels, PairCounter& counter, Mark&& mark, Ids&& ids) {
  if (num_pixels == 0) return true;
  constexpr int64_t kChunk = 1024;
  alignas(8) uint8_t changes[kChunk];
  bool ids_valid = true;
  int64_t run_start = 0;
  auto flush = [&](int64_t end) {
    const auto [gt_id, pred_id] = ids(run_start);
    ids_valid &= (gt_id >= 0) & (gt_id <= INT32_MAX) & (pred_id >= 0) & (pred_id <= INT32_MAX);
    counter.add((static_cast<uint64_t>(gt_id & 0x7fffffff) << 32) | static_cast<uint64_t>(pred_id & 0x7fffffff),
                end - run_start);
    run_start = end;
  };
  for (int64_t chunk = 1; chunk < num_pixels; chunk += kChunk) {
    const int64_t length = std::min(kChunk, num_pixels - chunk);
    mark(chunk, length, changes);
    for_each_flag(changes, length, [&](int64_t k) { flush(chunk + k); });
  }
  flush(num_pixels);
  return ids_valid;
}

// Integer id maps.
template <typename gt_t, typename pred_t>
bool count_pairs_ids(const gt_t* gt, const pred_t* pred, int64_t num_pixels, PairCounter& counter) {
  auto mark = [&](int64_t first, int64_t length, uint8_t* changes) {
    const gt_t* g = gt + first;
    const pred_t* p = pred + first;
    for (int64_t k = 0; k < length; ++k) changes[k] = (g[k] != g[k - 1]) | (p[k] != p[k - 1]);
  };
  auto ids = [&](int64_t index) {
    return std::pair<int64_t, int64_t>(static_cast<int64_t>(gt[index]), static_cast<int64_t>(pred[index]));
  };
  return count_pairs_flagged(num_pixels, counter, mark, ids);
}

// Two planar RGB maps (3 x H x W uint8 each, as decoded PNGs): the flag pass compares bytes, 16 or 32 per vector op.
bool count_pairs_planar(const uint8_t* gt, const uint8_t* pred, int64_t num_pixels, PairCounter& counter) {
  auto mark = [&](int64_t first, int64_t length, uint8_t* changes) {
    const uint8_t* g0 = gt + first;
    const uint8_t* g1 = g0 + num_pixels;
    const uint8_t* g2 = g1 + num_pixels;
    const uint8_t* p0 = pred + first;
    const uint8_t* p1 = p0 + num_pixels;
    const uint8_t* p2 = p1 + num_pixels;
    for (int64_t k = 0; k < length; ++k) {
      changes[k] = static_cast<uint8_t>(((g0[k] ^ g0[k - 1]) | (g1[k] ^ g1[k - 1]) | (g2[k] ^ g2[k - 1]) |
                                         (p0[k] ^ p0[k - 1]) | (p1[k] ^ p1[k - 1]) | (p2[k] ^ p2[k - 1])) != 0);
    }
  };
  auto ids = [&](int64_t index) {
    const int64_t gt_id = gt[index] + 256 * static_cast<int64_t>(gt[index + num_pixels]) +
                          65536 * static_cast<int64_t>(gt[index + 2 * num_pixels]);
    const int64_t pred_id = pred[index] + 256 * static_cast<int64_t>(pred[index + num_pixels]) +
                            65536 * static_cast<int64_t>(pred[index + 2 * num_pixels]);
    return std::pair<int64_t, int64_t>(gt_id, pred_id);
  };
  return count_pairs_flagged(num_pixels, counter, mark, ids);
}

// Two interleaved RGB maps (H x W x 3 uint8 each, as PIL decodes PNGs). The flag pass XORs every byte with the same
// channel of the left neighbour (3 bytes back) over whole chunks, so it vectorises like the planar pass without
// de-interleaving; a pixel changing in several channels is flagged once per channel, and the flush skips the repeats
// (adding a zero count would be harmless, but costs a table probe).
bool count_pairs_interleaved(const uint8_t* gt, const uint8_t* pred, int64_t num_pixels, PairCounter& counter) {
  if (num_pixels == 0) return true;
  auto id_at = [](const uint8_t* map, int64_t pixel) {
    const uint8_t* rgb = map + 3 * pixel;
    return static_cast<uint64_t>(rgb[0]) | (static_cast<uint64_t>(rgb[1]) << 8) | (static_cast<uint64_t>(rgb[2]) << 16);
  };
  int64_t run_start = 0;
  auto flush = [&](int64_t end) {
    if (end == run_start) return;
    counter.add((id_at(gt, run_start) << 32) | id_at(pred, run_start), end - run_start);
    run_start = end;
  };
  constexpr int64_t kChunk = 3 * 1024;
  alignas(64) uint8_t changes[kChunk];
  const int64_t num_bytes = 3 * num_pixels;
  for (int64_t chunk = 3; chunk < num_bytes; chunk += kChunk) {
    const int64_t length = std::min(kChunk, num_bytes - chunk);
    const uint8_t* g = gt + chunk;
    const uint8_t* p = pred + chunk;
    for (int64_t k = 0; k < length; ++k) changes[k] = (g[k] ^ g[k - 3]) | (p[k] ^ p[k - 3]);
    for_each_flag(changes, length, [&](int64_t k) { flush((chunk + k) / 3); });
  }
  flush(num_pixels);
  return true;  // 24-bit colour ids always lie in [0, 2^31)
}

bool is_rgb(const torch::Tensor& map) { return map.scalar_type() == torch::kUInt8 && map.dim() == 3 && map.size(2) == 3; }

// An H x W x 3 view of a contiguous 3 x H x W tensor.
bool is_planar(const torch::Tensor& map) {
  return is_rgb(map) && map.stride(2) == map.size(0) * map.size(1) && map.stride(1) == 1 && map.stride(0) == map.size(1);
}

int64_t num_pixels_of(const torch::Tensor& map) { return is_rgb(map) ? map.numel() / 3 : map.numel(); }

// Calls `body` with the IdReader matching the map's layout and dtype.
template <typename Body>
void with_reader(const torch::Tensor& map, Body&& body) {
  if (is_planar(map)) {
    body(IdReader<uint8_t, Layout::kRgbPlanar>{map.data_ptr<uint8_t>(), map.size(0) * map.size(1)});
  } else if (is_rgb(map)) {
    body(IdReader<uint8_t, Layout::kRgbInterleaved>{map.data_ptr<uint8_t>(), 0});
  } else {
    AT_DISPATCH_INTEGRAL_TYPES(map.scalar_type(), "segment_pairs", [&] {
      body(IdReader<scalar_t, Layout::kIds>{map.data_ptr<scalar_t>(), 0});
    });
  }
}

bool count_image(const torch::Tensor& gt, const torch::Tensor& pred, PairCounter& counter) {
  const int64_t n = num_pixels_of(pred);
  bool valid = true;
  if (is_planar(gt) && is_planar(pred)) {
    return count_pairs_planar(gt.data_ptr<uint8_t>(), pred.data_ptr<uint8_t>(), n, counter);
  }
  if (is_rgb(gt) && is_rgb(pred) && gt.is_contiguous() && pred.is_contiguous()) {
    return count_pairs_interleaved(gt.data_ptr<uint8_t>(), pred.data_ptr<uint8_t>(), n, counter);
  }
  if (!is_rgb(gt) && !is_rgb(pred)) {
    with_label_types(gt, pred, [&](const auto* gt_ids, const auto* pred_ids) {
      valid = count_pairs_ids(gt_ids, pred_ids, n, counter);
    });
    return valid;
  }
  with_reader(gt, [&](const auto& gt_reader) {
    with_reader(pred, [&](const auto& pred_reader) { valid = count_pairs(gt_reader, pred_reader, n, counter); });
  });
  return valid;
}

}  // namespace

// Pixel counts of every (gt id, pred id) pair of each image.
//   gt_maps[b], pred_maps[b]: CPU contiguous integer id maps of one shape, or uint8 (H, W, 3) COCO RGB maps
//   (contiguous, or the permuted view of a contiguous (3, H, W) image).
// Returns (image index (M,), gt id (M,), pred id (M,), count (M,)) int64, sorted by (image, gt id, pred id).
std::vector<torch::Tensor> segment_pairs_batch(const std::vector<torch::Tensor>& gt_maps,
                                               const std::vector<torch::Tensor>& pred_maps) {
  OMG_CHECK(gt_maps.size() == pred_maps.size(), "segment_pairs_batch: ", gt_maps.size(), " gt maps but ",
            pred_maps.size(), " pred maps");
  const int64_t batch = static_cast<int64_t>(gt_maps.size());
  for (int64_t b = 0; b < batch; ++b) {
    OMG_CHECK(gt_maps[b].device().is_cpu() && pred_maps[b].device().is_cpu(), "segment_pairs_batch: CPU tensors only");
    for (const torch::Tensor* map : {&gt_maps[b], &pred_maps[b]}) {
      OMG_CHECK(map->is_contiguous() || is_planar(*map),
                "segment_pairs_batch: maps must be contiguous (or the H x W x 3 view of a 3 x H x W image)");
    }
    OMG_CHECK(num_pixels_of(gt_maps[b]) == num_pixels_of(pred_maps[b]), "segment_pairs_batch: image ", b,
              " has maps of different sizes");
  }
  std::vector<std::vector<std::pair<uint64_t, int64_t>>> per_image(batch);
  std::vector<char> valid(batch, 1);
  share_images(batch, [&](auto&& next_image) {
    for (int64_t b = next_image(); b >= 0; b = next_image()) {
      PairCounter counter;
      valid[b] = count_image(gt_maps[b], pred_maps[b], counter);
      per_image[b] = counter.sorted_entries();
    }
  });
  int64_t total = 0;
  for (int64_t b = 0; b < batch; ++b) {
    OMG_CHECK(valid[b], "segment_pairs_batch: image ", b, " holds segment ids outside [0, 2^31)");
    total += static_cast<int64_t>(per_image[b].size());
  }
  auto options = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor image_index = torch::empty({total}, options);
  torch::Tensor gt_ids = torch::empty({total}, options);
  torch::Tensor pred_ids = torch::empty({total}, options);
  torch::Tensor counts = torch::empty({total}, options);
  int64_t* image_out = image_index.data_ptr<int64_t>();
  int64_t* gt_out = gt_ids.data_ptr<int64_t>();
  int64_t* pred_out = pred_ids.data_ptr<int64_t>();
  int64_t* count_out = counts.data_ptr<int64_t>();
  int64_t row = 0;
  for (int64_t b = 0; b < batch; ++b) {
    for (const auto& entry : per_image[b]) {
      image_out[row] = b;
      gt_out[row] = static_cast<int64_t>(entry.first >> 32);
      pred_out[row] = static_cast<int64_t>(entry.first & 0xffffffffULL);
      count_out[row] = entry.second;
      ++row;
    }
  }
  return {image_index, gt_ids, pred_ids, counts};
}

namespace {

// Adds the pixels [begin, end) of two label maps to a (K x K) histogram; false when a label lies outside [0, K).
// Label maps are made of regions, so pixels are taken a run of identical (gt, pred) pairs at a time: one histogram
// update per run instead of per pixel, and the comparison loop is cheaper than the scattered increment it replaces.
template <typename gt_t, typename pred_t>
bool add_confusion(const gt_t* gt, const pred_t* pred, int64_t begin, int64_t end, int64_t num_classes,
                   int64_t ignore_index, int64_t* histogram) {
  bool inside_all = true;
  int64_t i = begin;
  while (i < end) {
    const gt_t g = gt[i];
    const pred_t p = pred[i];
    int64_t j = i + 1;
    while (j < end && gt[j] == g && pred[j] == p) ++j;
    const int64_t gt_class = static_cast<int64_t>(g);
    const int64_t pred_class = static_cast<int64_t>(p);
    if (ignore_index < 0 || gt_class != ignore_index) {
      const bool inside = (gt_class >= 0) & (gt_class < num_classes) & (pred_class >= 0) & (pred_class < num_classes);
      inside_all &= inside;
      if (inside) histogram[gt_class * num_classes + pred_class] += j - i;
    }
    i = j;
  }
  return inside_all;
}

// Below this many pixels a map is counted on the calling thread: waking the pool costs more than it saves, and on a
// shared machine a descheduled worker would make every image wait for it.
constexpr int64_t kInlineConfusionPixels = int64_t{1} << 20;

void check_confusion_inputs(const torch::Tensor& gt_labels, const torch::Tensor& pred_labels, const char* where) {
  OMG_CHECK(gt_labels.device().is_cpu() && pred_labels.device().is_cpu(), where, ": CPU tensors only");
  OMG_CHECK(gt_labels.is_contiguous() && pred_labels.is_contiguous(), where, ": contiguous tensors only");
  OMG_CHECK(gt_labels.numel() == pred_labels.numel(), where, ": label maps differ in size");
}

torch::Tensor empty_int64() { return torch::empty({0}, torch::TensorOptions().dtype(torch::kInt64)); }

}  // namespace

// (K, K) int64 pixel counts, rows = gt class, columns = predicted class; gt pixels equal to ignore_index are skipped
// (ignore_index < 0 means none). Returns an empty tensor when a label falls outside [0, K) so Python can raise the
// detailed error.
torch::Tensor confusion_matrix(const torch::Tensor& gt_labels, const torch::Tensor& pred_labels, int64_t num_classes,
                               int64_t ignore_index) {
  if (gt_labels.is_cuda() || pred_labels.is_cuda()) {
    OMG_CHECK(gt_labels.device() == pred_labels.device(), "confusion_matrix: label maps on different devices");
#ifdef WITH_CUDA
    return confusion_matrix_cuda(gt_labels, pred_labels, num_classes, ignore_index);
#else
    OMG_CHECK(false, "confusion_matrix: this build has no CUDA kernels");
#endif
  }
  check_confusion_inputs(gt_labels, pred_labels, "confusion_matrix");
  const int64_t n = gt_labels.numel();
  const int64_t cells = num_classes * num_classes;
  torch::Tensor result = torch::zeros({num_classes, num_classes}, torch::TensorOptions().dtype(torch::kInt64));
  int64_t* out = result.data_ptr<int64_t>();
  std::atomic<bool> inside_all{true};
  with_label_types(gt_labels, pred_labels, [&](const auto* gt, const auto* pred) {
    if (n <= kInlineConfusionPixels) {
      inside_all = add_confusion(gt, pred, 0, n, num_classes, ignore_index, out);
      return;
    }
    std::mutex merge;
    // one histogram per range handed to a thread (about one per thread), merged once
    at::parallel_for(0, n, kInlineConfusionPixels / 4, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> histogram(cells, 0);
      if (!add_confusion(gt, pred, begin, end, num_classes, ignore_index, histogram.data())) inside_all = false;
      std::lock_guard<std::mutex> lock(merge);
      for (int64_t c = 0; c < cells; ++c) out[c] += histogram[c];
    });
  });
  return inside_all ? result : empty_int64();
}

// The confusion matrix summed over many label-map pairs (images of any sizes), images counted in parallel.
// Returns (matrix (K, K), first image index with a label outside [0, K) or -1); the matrix is empty in that case.
std::vector<torch::Tensor> confusion_matrix_batch(const std::vector<torch::Tensor>& gt_maps,
                                                  const std::vector<torch::Tensor>& pred_maps, int64_t num_classes,
                                                  int64_t ignore_index) {
  OMG_CHECK(gt_maps.size() == pred_maps.size(), "confusion_matrix_batch: ", gt_maps.size(), " gt maps but ",
            pred_maps.size(), " pred maps");
  const int64_t batch = static_cast<int64_t>(gt_maps.size());
  for (int64_t b = 0; b < batch; ++b) check_confusion_inputs(gt_maps[b], pred_maps[b], "confusion_matrix_batch");
  const int64_t cells = num_classes * num_classes;
  torch::Tensor result = torch::zeros({num_classes, num_classes}, torch::TensorOptions().dtype(torch::kInt64));
  int64_t* out = result.data_ptr<int64_t>();
  std::atomic<int64_t> first_bad{batch};
  std::mutex merge;
  share_images(batch, [&](auto&& next_image) {
    std::vector<int64_t> histogram(cells, 0);  // one per worker, merged once
    for (int64_t b = next_image(); b >= 0; b = next_image()) {
      bool inside = true;
      with_label_types(gt_maps[b], pred_maps[b], [&](const auto* gt, const auto* pred) {
        inside = add_confusion(gt, pred, 0, gt_maps[b].numel(), num_classes, ignore_index, histogram.data());
      });
      if (!inside) {
        int64_t seen = first_bad.load();
        while (b < seen && !first_bad.compare_exchange_weak(seen, b)) {
        }
      }
    }
    std::lock_guard<std::mutex> lock(merge);
    for (int64_t c = 0; c < cells; ++c) out[c] += histogram[c];
  });
  const int64_t bad = first_bad.load();
  torch::Tensor bad_index = torch::full({}, bad < batch ? bad : -1, torch::TensorOptions().dtype(torch::kInt64));
  return {bad < batch ? empty_int64() : result, bad_index};
}

// COCO RLE of binary masks: masks (N, H, W) uint8/bool, read column-major (Fortran order) as COCO does. Returns
// (run lengths concatenated (R,), runs per mask (N,)) int64; runs alternate starting with zeros.
std::vector<torch::Tensor> rle_encode(const torch::Tensor& masks) {
  OMG_CHECK(masks.dim() == 3 && masks.device().is_cpu() && masks.is_contiguous(),
            "rle_encode: expects a contiguous CPU (N, H, W) mask tensor");
  OMG_CHECK(masks.scalar_type() == torch::kUInt8 || masks.scalar_type() == torch::kBool,
            "rle_encode: masks must be uint8 or bool");
  const int64_t num_masks = masks.size(0), height = masks.size(1), width = masks.size(2);
  const uint8_t* data = reinterpret_cast<const uint8_t*>(masks.data_ptr());
  std::vector<std::vector<int64_t>> runs(num_masks);
  at::parallel_for(0, num_masks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const uint8_t* mask = data + m * height * width;
      std::vector<int64_t>& out = runs[m];
      uint8_t current = 0;
      int64_t length = 0;
      for (int64_t x = 0; x < width; ++x) {
        for (int64_t y = 0; y < height; ++y) {
          const uint8_t value = mask[y * width + x] != 0;
          if (value != current) {
            out.push_back(length);
            length = 0;
            current = value;
          }
          ++length;
        }
      }
      out.push_back(length);
    }
  });
  int64_t total = 0;
  for (const auto& r : runs) total += static_cast<int64_t>(r.size());
  torch::Tensor flat = torch::empty({total}, torch::TensorOptions().dtype(torch::kInt64));
  torch::Tensor lengths = torch::empty({num_masks}, torch::TensorOptions().dtype(torch::kInt64));
  int64_t* flat_out = flat.data_ptr<int64_t>();
  int64_t* lengths_out = lengths.data_ptr<int64_t>();
  for (int64_t m = 0; m < num_masks; ++m) {
    std::copy(runs[m].begin(), runs[m].end(), flat_out);
    flat_out += runs[m].size();
    lengths_out[m] = static_cast<int64_t>(runs[m].size());
  }
  return {flat, lengths};
}

using omg_coco_rle::rle_area;
using omg_coco_rle::rle_intersection;

// IoU of every (detection, ground truth) RLE pair, as pycocotools' maskUtils.iou: for a crowd ground truth the
// denominator is the detection's area. Returns (D, G) float64.
torch::Tensor rle_iou(const torch::Tensor& det_runs, const torch::Tensor& det_lengths, const torch::Tensor& gt_runs,
                      const torch::Tensor& gt_lengths, const torch::Tensor& gt_iscrowd) {
  const int64_t num_det = det_lengths.numel(), num_gt = gt_lengths.numel();
  const int64_t* dr = det_runs.data_ptr<int64_t>();
  const int64_t* gr = gt_runs.data_ptr<int64_t>();
  std::vector<int64_t> det_start(num_det + 1, 0), gt_start(num_gt + 1, 0);
  for (int64_t d = 0; d < num_det; ++d) det_start[d + 1] = det_start[d] + det_lengths.data_ptr<int64_t>()[d];
  for (int64_t g = 0; g < num_gt; ++g) gt_start[g + 1] = gt_start[g] + gt_lengths.data_ptr<int64_t>()[g];
  std::vector<int64_t> det_area(num_det), gt_area(num_gt);
  for (int64_t d = 0; d < num_det; ++d) det_area[d] = rle_area(dr + det_start[d], det_start[d + 1] - det_start[d]);
  for (int64_t g = 0; g < num_gt; ++g) gt_area[g] = rle_area(gr + gt_start[g], gt_start[g + 1] - gt_start[g]);
  const uint8_t* crowd = gt_iscrowd.data_ptr<uint8_t>();
  torch::Tensor ious = torch::zeros({num_det, num_gt}, torch::TensorOptions().dtype(torch::kFloat64));
  double* out = ious.data_ptr<double>();
  at::parallel_for(0, num_det, kSmallWorkGrain, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) {
      for (int64_t g = 0; g < num_gt; ++g) {
        const int64_t inter = rle_intersection(dr + det_start[d], det_start[d + 1] - det_start[d], gr + gt_start[g],
                                               gt_start[g + 1] - gt_start[g]);
        const int64_t uni = crowd[g] ? det_area[d] : det_area[d] + gt_area[g] - inter;
        out[d * num_gt + g] = uni > 0 ? static_cast<double>(inter) / static_cast<double>(uni) : 0.0;
      }
    }
  });
  return ious;
}

// Greedy COCO matching (pycocotools COCOeval.evaluateImg) of several (image, category) groups at once.
//   ious: concatenated row-major (D_g, G_g) IoU blocks, detections in input order.
//   det_offsets (N_groups + 1), gt_offsets (N_groups + 1): where each group's detections / ground truths start.
//   det_scores, det_areas (sum D_g) float64; gt_areas (sum G_g) float64; gt_crowd (sum G_g) uint8.
//   area_ranges (A, 2) float64 inclusive; iou_thresholds (T,) float64; max_dets: detections kept per group.
// Returns (kept detection indices (K,) int64, group-relative and in score order (stable), kept per group (N,) int64,
//          matched (K, A, T) bool, ignored (K, A, T) bool, regular gt per group and range (N, A) int64).
std::vector<torch::Tensor> coco_match_groups(const torch::Tensor& ious, const torch::Tensor& det_offsets,
                                             const torch::Tensor& gt_offsets, const torch::Tensor& det_scores,
                                             const torch::Tensor& det_areas, const torch::Tensor& gt_areas,
                                             const torch::Tensor& gt_crowd, const torch::Tensor& area_ranges,
                                             const torch::Tensor& iou_thresholds, int64_t max_dets) {
  const int64_t groups = det_offsets.numel() - 1;
  const int64_t num_ranges = area_ranges.size(0), num_thresholds = iou_thresholds.numel();
  const double* iou = ious.data_ptr<double>();
  const int64_t* det_start = det_offsets.data_ptr<int64_t>();
  const int64_t* gt_start = gt_offsets.data_ptr<int64_t>();
  const double* score = det_scores.data_ptr<double>();
  const double* det_area = det_areas.data_ptr<double>();
  const double* gt_area = gt_areas.data_ptr<double>();
  const uint8_t* crowd = gt_crowd.data_ptr<uint8_t>();
  const double* ranges = area_ranges.data_ptr<double>();
  const double* thresholds = iou_thresholds.data_ptr<double>();

  // IoU block offsets and kept detections per group
  std::vector<int64_t> iou_start(groups + 1, 0), kept_start(groups + 1, 0);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t num_det = det_start[g + 1] - det_start[g], num_gt = gt_start[g + 1] - gt_start[g];
    iou_start[g + 1] = iou_start[g] + num_det * num_gt;
    kept_start[g + 1] = kept_start[g] + std::min(num_det, max_dets);
  }
  const int64_t total_kept = kept_start[groups];
  auto long_options = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor kept = torch::empty({total_kept}, long_options);
  torch::Tensor kept_count = torch::empty({groups}, long_options);
  torch::Tensor matched = torch::zeros({total_kept, num_ranges, num_thresholds}, torch::TensorOptions().dtype(torch::kBool));
  torch::Tensor ignored = torch::zeros({total_kept, num_ranges, num_thresholds}, torch::TensorOptions().dtype(torch::kBool));
  torch::Tensor regular = torch::zeros({groups, num_ranges}, long_options);
  int64_t* kept_out = kept.data_ptr<int64_t>();
  int64_t* kept_count_out = kept_count.data_ptr<int64_t>();
  bool* matched_out = matched.data_ptr<bool>();
  bool* ignored_out = ignored.data_ptr<bool>();
  int64_t* regular_out = regular.data_ptr<int64_t>();

  at::parallel_for(0, groups, kSmallWorkGrain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> order;
    std::vector<uint8_t> gt_ignored, taken;
    for (int64_t g = begin; g < end; ++g) {
      const int64_t d0 = det_start[g], num_det = det_start[g + 1] - d0;
      const int64_t g0 = gt_start[g], num_gt = gt_start[g + 1] - g0;
      const double* block = iou + iou_start[g];
      order.resize(num_det);
      for (int64_t d = 0; d < num_det; ++d) order[d] = d;
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[d0 + a] > score[d0 + b]; });
      const int64_t keep = std::min(num_det, max_dets);
      kept_count_out[g] = keep;
      for (int64_t r = 0; r < keep; ++r) kept_out[kept_start[g] + r] = order[r];
      gt_ignored.resize(num_gt);
      taken.resize(num_gt);
      for (int64_t a = 0; a < num_ranges; ++a) {
        const double low = ranges[2 * a], high = ranges[2 * a + 1];
        int64_t regular_count = 0;
        for (int64_t j = 0; j < num_gt; ++j) {
          const double area = gt_area[g0 + j];
          gt_ignored[j] = crowd[g0 + j] || area < low || area > high;
          regular_count += !gt_ignored[j];
        }
        regular_out[g * num_ranges + a] = regular_count;
        for (int64_t t = 0; t < num_thresholds; ++t) {
          const double threshold = std::min(thresholds[t], 1 - 1e-10);
          std::fill(taken.begin(), taken.end(), 0);
          for (int64_t r = 0; r < keep; ++r) {
            const int64_t d = order[r];
            const double* row = block + d * num_gt;
            int64_t best = -1;
            // regular ground truths first; ignored ones only when no regular one qualifies
            for (int pass = 0; pass < 2 && best < 0; ++pass) {
              double best_iou = threshold;
              for (int64_t j = 0; j < num_gt; ++j) {
                if (gt_ignored[j] != pass) continue;
                if (taken[j] && !crowd[g0 + j]) continue;
                if (row[j] < best_iou) continue;
                best_iou = row[j];
                best = j;  // ties go to the later ground truth, as in pycocotools
              }
            }
            const int64_t cell = ((kept_start[g] + r) * num_ranges + a) * num_thresholds + t;
            if (best >= 0) {
              matched_out[cell] = true;
              ignored_out[cell] = gt_ignored[best];
              taken[best] = 1;
            } else {
              const double area = det_area[d0 + d];
              ignored_out[cell] = area < low || area > high;
            }
          }
        }
      }
    }
  });
  return {kept, kept_count, matched, ignored, regular};
}

// Run lengths of COCO compressed RLE strings (the "counts" of pycocotools' compressed form), decoded by the shared
// omg_coco_rle::decode_rle_string. num_pixels >= 0 also requires every string's runs to cover that many pixels.
// Returns (runs concatenated (R,), runs per string (N,), mask areas (N,)) int64, the index of the first malformed
// string (-1 when all are well-formed) and what is wrong with it; the Python side names the image and annotation.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, int64_t, std::string> rle_from_strings(
    const std::vector<std::string>& strings, int64_t num_pixels) {
  const int64_t count = static_cast<int64_t>(strings.size());
  std::vector<std::vector<int64_t>> decoded(count);
  std::vector<omg_coco_rle::DecodeResult> results(count);
  at::parallel_for(0, count, 4 * kSmallWorkGrain, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      results[index] = omg_coco_rle::decode_rle_string(strings[index], num_pixels, decoded[index]);
    }
  });
  auto options = torch::TensorOptions().dtype(torch::kInt64);
  int64_t total = 0;
  for (int64_t index = 0; index < count; ++index) {
    if (results[index].problem != omg_coco_rle::Problem::kNone) {
      return {torch::empty({0}, options), torch::zeros({count}, options), torch::zeros({count}, options), index,
              omg_coco_rle::describe(results[index], strings[index], num_pixels)};
    }
    total += static_cast<int64_t>(decoded[index].size());
  }
  torch::Tensor lengths = torch::empty({count}, options);
  torch::Tensor areas = torch::empty({count}, options);
  torch::Tensor runs = torch::empty({total}, options);
  int64_t* out = runs.data_ptr<int64_t>();
  for (int64_t index = 0; index < count; ++index) {
    const auto& r = decoded[index];
    std::copy(r.begin(), r.end(), out);
    out += r.size();
    lengths.data_ptr<int64_t>()[index] = static_cast<int64_t>(r.size());
    areas.data_ptr<int64_t>()[index] = rle_area(r.data(), static_cast<int64_t>(r.size()));
  }
  return {runs, lengths, areas, -1, std::string()};
}

// IoUs of many (detections x ground truths) groups over one table of RLEs (as pycocotools maskUtils.iou, crowd-aware).
//   runs / lengths: the RLE table (rle_from_strings); det_rows / gt_rows: table rows of each group's members,
//   concatenated; det_offsets / gt_offsets (N + 1): where each group's members start; gt_crowd: per gt_rows entry.
// Returns the groups' row-major (D_g, G_g) blocks concatenated, float64.
torch::Tensor rle_iou_groups(const torch::Tensor& runs, const torch::Tensor& lengths, const torch::Tensor& det_rows,
                             const torch::Tensor& det_offsets, const torch::Tensor& gt_rows,
                             const torch::Tensor& gt_offsets, const torch::Tensor& gt_crowd) {
  const int64_t table = lengths.numel(), groups = det_offsets.numel() - 1;
  const int64_t* run = runs.data_ptr<int64_t>();
  const int64_t* length = lengths.data_ptr<int64_t>();
  std::vector<int64_t> start(table + 1, 0), area(table, 0);
  for (int64_t r = 0; r < table; ++r) start[r + 1] = start[r] + length[r];
  for (int64_t r = 0; r < table; ++r) area[r] = rle_area(run + start[r], length[r]);
  const int64_t* det = det_rows.data_ptr<int64_t>();
  const int64_t* gt = gt_rows.data_ptr<int64_t>();
  const int64_t* det_start = det_offsets.data_ptr<int64_t>();
  const int64_t* gt_start = gt_offsets.data_ptr<int64_t>();
  const uint8_t* crowd = gt_crowd.data_ptr<uint8_t>();
  std::vector<int64_t> block_start(groups + 1, 0);
  for (int64_t g = 0; g < groups; ++g) {
    block_start[g + 1] = block_start[g] + (det_start[g + 1] - det_start[g]) * (gt_start[g + 1] - gt_start[g]);
  }
  torch::Tensor ious = torch::empty({block_start[groups]}, torch::TensorOptions().dtype(torch::kFloat64));
  double* out = ious.data_ptr<double>();
  at::parallel_for(0, groups, kSmallWorkGrain, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      const int64_t num_gt = gt_start[g + 1] - gt_start[g];
      double* block = out + block_start[g];
      for (int64_t i = det_start[g]; i < det_start[g + 1]; ++i) {
        const int64_t d = det[i];
        for (int64_t j = 0; j < num_gt; ++j) {
          const int64_t k = gt_start[g] + j, t = gt[k];
          const int64_t inter = rle_intersection(run + start[d], length[d], run + start[t], length[t]);
          const int64_t uni = crowd[k] ? area[d] : area[d] + area[t] - inter;
          block[(i - det_start[g]) * num_gt + j] = uni > 0 ? static_cast<double>(inter) / static_cast<double>(uni) : 0.0;
        }
      }
    }
  });
  return ious;
}

bool has_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("has_cuda", &has_cuda, "whether the CUDA kernels were compiled in");
  m.def("segment_pairs_batch", &segment_pairs_batch, "pixel counts of (gt id, pred id) pairs per image");
  m.def("confusion_matrix", &confusion_matrix, "(K, K) confusion matrix of two label maps");
  m.def("confusion_matrix_batch", &confusion_matrix_batch, "confusion matrix summed over many label-map pairs");
  m.def("rle_encode", &rle_encode, "COCO run-length encoding of binary masks");
  m.def("rle_iou", &rle_iou, "IoU between two sets of COCO RLEs (crowd-aware)");
  m.def("rle_from_strings", &rle_from_strings,
        "run lengths of COCO compressed RLE strings -> (runs, lengths, areas, index of the first malformed string or "
        "-1, its problem)",
        py::arg("strings"), py::arg("num_pixels") = -1);
  m.def("rle_iou_groups", &rle_iou_groups, "crowd-aware IoUs of many (detection x ground truth) RLE groups");
  m.def("coco_match_groups", &coco_match_groups, "COCOeval greedy matching of many (image, category) groups");
}
