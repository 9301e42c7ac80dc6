#include "core/op_registry.h"

#include <array>

#include "core/error.h"

namespace paradit::core {
namespace {

struct Entry {
  Op op;
  std::string_view name;
  bool any_dtype;  // a data-movement op: every dtype
};

constexpr std::array kOps = {
    Entry{Op::kLinear, "linear", false},
    Entry{Op::kMatmul, "matmul", false},
    Entry{Op::kLayerNorm, "layer_norm", false},
    Entry{Op::kRmsNorm, "rms_norm", false},
    Entry{Op::kGroupNorm, "group_norm", false},
    Entry{Op::kChannelNorm, "channel_norm", false},
    Entry{Op::kGroupNormStats, "group_norm_stats", false},
    Entry{Op::kGroupNormApply, "group_norm_apply", false},
    Entry{Op::kGelu, "gelu", false},
    Entry{Op::kSilu, "silu", false},
    Entry{Op::kQuickGelu, "quick_gelu", false},
    Entry{Op::kRelu, "relu", false},
    Entry{Op::kExp, "exp", false},
    Entry{Op::kSqrt, "sqrt", false},
    Entry{Op::kTanh, "tanh", false},
    Entry{Op::kSoftmax, "softmax", false},
    Entry{Op::kApplyRope, "apply_rope", false},
    Entry{Op::kAttention, "attention", false},
    Entry{Op::kAttentionMerge, "attention_merge", false},
    Entry{Op::kConv2d, "conv2d", false},
    Entry{Op::kUpsampleNearest2d, "upsample_nearest2d", false},
    Entry{Op::kConv3d, "conv3d", false},
    Entry{Op::kAdd, "add", false},
    Entry{Op::kSub, "sub", false},
    Entry{Op::kMul, "mul", false},
    Entry{Op::kDiv, "div", false},
    Entry{Op::kScale, "scale", false},
    Entry{Op::kAddInPlace, "add_", false},
    Entry{Op::kModulate, "modulate", false},
    Entry{Op::kGatedAdd, "gated_add", false},
    Entry{Op::kLincomb, "lincomb", false},
    Entry{Op::kClamp, "clamp", false},
    Entry{Op::kCountNonFinite, "count_non_finite", false},
    Entry{Op::kAffine, "affine", false},
    Entry{Op::kConcat, "concat", true},
    Entry{Op::kSplit, "split", true},
    Entry{Op::kChunk, "chunk", true},
    Entry{Op::kEmbedding, "embedding", false},
    Entry{Op::kCopy, "copy", true},
    Entry{Op::kFill, "fill", false},
};

constexpr std::array<Op, kOps.size()> make_all() {
  std::array<Op, kOps.size()> a{};
  for (size_t i = 0; i < kOps.size(); ++i) a[i] = kOps[i].op;
  return a;
}
constexpr auto kAll = make_all();

const Entry& entry(Op op) {
  const auto i = static_cast<size_t>(op);
  PARADIT_CHECK(i < kOps.size() && kOps[i].op == op, "op registry: unknown op ", i);
  return kOps[i];
}

bool float_activation(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

}  // namespace

std::span<const Op> all_ops() { return kAll; }

std::string_view op_name(Op op) { return entry(op).name; }

bool supports(Op op, Device device, DType dtype) {
  const Entry& e = entry(op);
  switch (device) {
    case Device::CPU:
      if (e.any_dtype) return true;
      if (op == Op::kFill) return dtype != DType::F8E4M3 && dtype != DType::F8E5M2;
      return dtype == DType::F32;
    case Device::CUDA:
      if (!kCudaBuilt) return false;
      if (e.any_dtype) return true;
      if (op == Op::kFill) return dtype != DType::F8E4M3 && dtype != DType::F8E5M2;
      return float_activation(dtype);
  }
  return false;
}

void require_support(Op op, Device device, DType dtype) {
  if (supports(op, device, dtype)) return;
  if (device == Device::CUDA && !kCudaBuilt) {
    fail(op_name(op), ": a tensor is on CUDA, but this build has no CUDA backend "
         "(configure with -DPARADIT_WITH_CUDA=ON)");
  }
  fail(op_name(op), ": no ", device_name(device), " body for ", dtype_name(dtype), " (",
       device == Device::CPU ? "the CPU computes in F32" : "CUDA computes in F32, BF16 or F16",
       ")");
}

}  // namespace paradit::core
