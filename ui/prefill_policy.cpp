#include "ui/prefill_policy.h"

#include "engine/common/error.h"

namespace pkvui {

pkv::PrefillContext prefillContextOf(const pkv::Session& session) {
    const pkv::SessionStats st = session.stats();
    pkv::PrefillContext ctx;
    ctx.promptLength = st.promptTokens;
    ctx.importance = &session.importance();
    ctx.window = &session.attentionWindow();
    ctx.windowRows = session.attentionWindowRows();
    // Text ids before the marker are one row each, so the marker's index in the ids is the row
    // where the image embeddings begin.
    const auto& markers = session.prompt().imagePositions;
    if (!markers.empty() && st.imageTokens > 0) {
        ctx.imageBegin = markers.front();
        ctx.imageEnd = ctx.imageBegin + st.imageTokens;
    }
    return ctx;
}

void applyPolicyToPrefill(pkv::Session& session) {
    if (!session.policy()) return;
    if (!session.hasPrefill() || !session.generated().empty() ||
        session.tokensSeen() != session.stats().promptTokens)
        throw pkv::Error("The KV policy can only compress a cache fresh from its prefill.");
    // The session owns its cache non-const; it only hands out a const view.
    auto* cache = const_cast<pkv::KvCache*>(session.cache());
    session.policy()->afterPrefill(*cache, prefillContextOf(session));
}

}  // namespace pkvui
