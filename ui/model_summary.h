#pragma once
// What a model folder holds and what running it will cost, from the folder alone (no weights
// loaded): the same estimate `prefixkv info` prints.
#include <QString>

#include "engine/io/model_folder.h"
#include "engine/model/llava.h"
#include "engine/model/memory_estimate.h"
#include "ui/engine_types.h"

namespace pkvui {

// kvDtype: what the cache would store (LlavaModel::kvDtype() once loaded).
ModelSummary summarizeFolder(const pkv::ModelFolder& folder, bool demo, pkv::DType kvDtype);
// The cache dtype the user chose in the settings ("kvDtype": auto, f32, f16; auto when unset or unknown).
pkv::KvDtypeChoice kvDtypeSetting();
// Where the user chose to keep the weights ("weights": mapped, memory; mapped when unset or unknown).
pkv::WeightStorage weightStorageSetting();
// A few lines for a person: architecture, weights, KV cost per token, estimated memory.
QString describeSummary(const ModelSummary& s);
QString formatBytes(double bytes);

}  // namespace pkvui
