#include "engine/kv/baselines/elastic_policy.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "engine/common/error.h"
#include "engine/kv/baselines/selection.h"
#include "engine/kv/prefixkv_policy.h"

namespace pkv {

std::unique_ptr<KvPolicy> ElasticPolicy::clone() const { return std::make_unique<ElasticPolicy>(*this); }

void ElasticPolicy::afterPrefill(KvCache& cache, const PrefillContext& ctx) {
    const int64_t n = ctx.promptLength;
    checkPrefilledCache(cache, n, name());
    checkImportance(cache, ctx, name());
    r_ = budget_.evictedFraction(n);
    prefilled_ = true;

    const int64_t forget = forgetCount(n, n, r_);
    const bool compress = forget > 1;
    int64_t kept = n;
    for (int l = 0; l < cache.numLayers() && compress; ++l)
        kept = compressLayer(cache, l, (*ctx.importance)[size_t(l)], forget);
    index_ = n - (compress ? forget : 0) + kEvictionDistance;
    if (index_ < 1) index_ = kept / 2;
    if (!compress) deleteIfOver(cache, n);
}

int64_t ElasticPolicy::compressLayer(KvCache& cache, int layer, const std::vector<float>& importance,
                                     int64_t forget) const {
    const int64_t n = int64_t(importance.size()), s = kBaselineStartSize;
    if (n <= s + 1) return n;
    const std::vector<float> candidates(importance.begin() + s, importance.end() - 1);
    const ArgsortSplit split = ecArgsortSplit(candidates, forget, faithful_);

    std::vector<int64_t> anchors;
    for (int64_t i : split.important) anchors.push_back(i + s);
    if (anchors.empty()) anchors = {0, n - 1};
    // anchor -> sum of the original rows merged into it (its own included) and their count.
    struct Merge {
        std::vector<float> k, v;
        int64_t count = 1;
    };
    std::map<int64_t, Merge> merges;
    std::vector<float> k, v;
    for (int64_t i : split.thrown) {
        const int64_t thrown = faithful_ ? i : i + s;
        int64_t anchor = anchors.front();
        for (int64_t a : anchors)
            if (std::llabs(a - thrown) < std::llabs(anchor - thrown)) anchor = a;
        auto [it, fresh] = merges.try_emplace(anchor);
        if (fresh) cache.read(layer, anchor, it->second.k, it->second.v);
        cache.read(layer, thrown, k, v);
        for (size_t c = 0; c < k.size(); ++c) {
            it->second.k[c] += k[c];
            it->second.v[c] += v[c];
        }
        ++it->second.count;
    }
    // Every read above saw original rows: the reference gathers the thrown rows before its
    // scatter, so merging into an anchor never feeds a later merge.
    for (auto& [anchor, m] : merges) {
        for (size_t c = 0; c < m.k.size(); ++c) {
            m.k[c] /= float(m.count);
            m.v[c] /= float(m.count);
        }
        cache.overwrite(layer, anchor, m.k, m.v);
    }

    std::vector<int64_t> kept;
    for (int64_t i = 0; i < s; ++i) kept.push_back(i);
    for (int64_t i : split.important) kept.push_back(i + s);
    kept.push_back(n - 1);
    cache.gather(layer, kept);
    return int64_t(kept.size());
}

void ElasticPolicy::afterStep(KvCache& cache, const StepContext& ctx) {
    if (!prefilled_) throw Error("The " + name() + " policy was asked to maintain a cache it never saw prefilled.");
    deleteIfOver(cache, ctx.tokensSeen);
}

void ElasticPolicy::deleteIfOver(KvCache& cache, int64_t tokensSeen) {
    const int64_t length = cache.length(0);
    if (forgetCount(length, tokensSeen, r_) < 1 || length <= 1 || index_ >= length) return;
    for (int l = 0; l < cache.numLayers(); ++l) cache.erase(l, index_);
}

}  // namespace pkv
