#pragma once
// Pieces shared by the CLI subcommands: option parsing helpers, model loading with the demo
// fallback, and reporting errors as one sentence on stderr.
#include <QCommandLineParser>
#include <QString>
#include <QStringList>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>

#include "engine/model/llava.h"
#include "engine/session.h"

namespace pkvcli {

// Exit codes: 0 ok, 1 a user error (bad file, bad option), 2 usage, 130 cancelled by Ctrl+C.
enum Exit { Ok = 0, UserError = 1, Usage = 2, Interrupted = 130 };

// Resolves --model: the given folder, or the embedded demo model (extracted to a temp folder).
// `isDemo` tells the caller to label the output.
std::string modelPathOrDemo(const QString& given, bool* isDemo);
pkv::DeviceChoice parseDevice(const QString& text);
// --kv-dtype: its definition (for addOptions) and its value.
QCommandLineOption kvDtypeOptionSpec();
pkv::KvDtypeChoice kvDtypeOption(const QCommandLineParser& p);
// --weights mapped|memory: its definition and its value.
QCommandLineOption weightsOptionSpec();
pkv::WeightStorage weightsOption(const QCommandLineParser& p);
int failWith(const QString& sentence);
// Runs a command's body, turning what it throws into the exit codes above and one sentence on
// stderr: pkv::Error (the user's mistake), pkv::Cancelled (Ctrl+C), out of memory.
int runGuarded(const std::function<int()>& body);
// Parses args into p. Returns the exit code when the command ends here (a parse error, reported;
// or --help, printed), otherwise nothing.
std::optional<int> parseArguments(QCommandLineParser& p, const QStringList& args);
// Throws pkv::Error "Give --NAME." for the first of `names` that is not set.
void requireOptions(const QCommandLineParser& p, std::initializer_list<const char*> names);
pkv::ImageMode imageModeOption(const QCommandLineParser& p);        // --image-mode pad|crop
pkv::PositionMode positionModeOption(const QCommandLineParser& p);  // --position-mode true|faithful
bool faithfulOption(const QCommandLineParser& p);                   // --variant faithful|fixed
// Parses an int/float option, throwing pkv::Error naming the option when it is not a number in range.
int intOption(const QCommandLineParser& p, const QString& name, int lo, int hi);
double doubleOption(const QCommandLineParser& p, const QString& name, double lo, double hi);

int runGenerate(const QStringList& args);
int runInfo(const QStringList& args);
int runBench(const QStringList& args);
int runEval(const QStringList& args);
int runScore(const QStringList& args);
int runProfile(const QStringList& args);

}  // namespace pkvcli
