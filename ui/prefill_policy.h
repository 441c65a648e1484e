#pragma once
// Compressing a forked prefill. The Session runs its policy's afterPrefill only inside prefill(),
// but the side-by-side view prefills once without a policy and forks: the compressed fork must
// then be compressed by hand, with the same context the Session would have given the policy.
#include "engine/session.h"

namespace pkvui {

// The PrefillContext the session's prompt describes (length, importance, window, image span).
pkv::PrefillContext prefillContextOf(const pkv::Session& session);

// Runs session.policy()->afterPrefill on the session's cache. Only valid straight after a prefill
// or a fork of one (nothing generated yet); a session without a policy is left alone.
void applyPolicyToPrefill(pkv::Session& session);

}  // namespace pkvui
