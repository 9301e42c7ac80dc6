#pragma once
// Forward arguments beyond named tensors (paradit forward's inputs file):
//   - non-tensor arguments stored as JSON strings in the safetensors __metadata__ under their
//     name, as diffusers' fixtures record them ({"img_shapes": "[[[1, 6, 4]], [[1, 6, 4]]]"}):
//     numeric arrays become tensors of their nested shape (I64 when every number is an integer,
//     else F32); null, objects and strings are dropped (they select diffusers defaults);
//   - list arguments as name.0, name.1 … (Z-Image's x and cap_feats): the family turns them into
//     its batched form, and the output is written back as a list (sample.0, sample.1 …).

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/transformer.h"

namespace paradit::models {

// Tensors for the JSON arguments in `metadata` (the key "format" and non-numeric values are
// skipped); `where` names the file in errors (malformed JSON, ragged arrays).
NamedTensors metadata_arguments(const std::map<std::string, std::string>& metadata,
                                const std::string& where);

// Whether `inputs` pass a list argument (a name ending in ".0" whose prefix is no other input).
bool has_list_arguments(const NamedTensors& inputs);

// The family's batched form of list arguments (Z-Image: x.i, cap_feats.i, t → hidden_states,
// encoder_hidden_states, encoder_attention_mask, timestep); `inputs` unchanged for families
// without list arguments. Error naming the class when it has none but lists were given.
NamedTensors batched_arguments(const Transformer& model, const NamedTensors& inputs);

// A list output from a batched `sample`: sample.0 = sample[0], … (one per list element).
std::vector<std::pair<std::string, core::Tensor>> list_outputs(const core::Tensor& sample);

}  // namespace paradit::models
