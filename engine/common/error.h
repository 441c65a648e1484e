#pragma once
// Errors a user can cause (a bad file, a wrong folder, a huge image, a prompt that does not fit)
// travel as pkv::Error: an exception whose what() is one sentence meant for a person. Entry
// points (CLI, GUI worker) catch it and show the sentence; nothing is lost and nothing asserts.
#include <stdexcept>
#include <string>

namespace pkv {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& sentence) : std::runtime_error(sentence) {}
};

// Thrown when a long operation (model load, prefill, decode) sees its cancel flag.
class Cancelled : public std::runtime_error {
public:
    Cancelled() : std::runtime_error("Cancelled.") {}
};

}  // namespace pkv
