#pragma once
// What a model folder holds and what running it will cost, from the folder alone (no weights
// loaded): the same estimate `prefixkv info` prints.
#include <QString>

#include "engine/io/model_folder.h"
#include "ui/engine_types.h"

namespace pkvui {

ModelSummary summarizeFolder(const pkv::ModelFolder& folder, bool demo);
// A few lines for a person: architecture, weights, KV cost per token, estimated memory.
QString describeSummary(const ModelSummary& s);
QString formatBytes(double bytes);

}  // namespace pkvui
