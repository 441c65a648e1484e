#pragma once
// The sentence a user-caused error carries, for tests that check what a person would read.
#include <QString>
#include <functional>

#include "engine/common/error.h"

namespace pkvtest {

// Runs f and returns the pkv::Error message it threw, or an empty string when it threw nothing.
inline QString errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const pkv::Error& e) {
        return QString::fromUtf8(e.what());
    }
    return {};
}

}  // namespace pkvtest
