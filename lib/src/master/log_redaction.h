#pragma once

// The config's secrets out of the build logs workers send. A local worker redacts every config
// secret itself; a remote worker knows only its own secret and git token, so a step there that
// prints a config secret it got somehow (the GitHub token, the Zulip key) would be stored raw.
// The master runs every log chunk and log file chunk through a log::StreamRedactor per step
// stream before storing it: a secret split across chunks is caught too.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <ci/core/log.h>

namespace ci::master {

class LogRedaction {
public:
    /// `secrets`: config::secrets(config); values shorter than log::min_secret_length are
    /// ignored, as the redactor does.
    explicit LogRedaction(std::vector<std::string> secrets);

    /// The text to store for chunk `sequence` of a stream of step `step` of build `build`
    /// (`file`: a log file's name, empty for the step's log): what the redactor can pass on
    /// now; it holds back a possible start of a secret until the next chunk or finish(). A
    /// chunk whose sequence the stream has seen (a resend) is redacted whole, on its own.
    [[nodiscard]] std::string feed(std::int64_t build,
                                   int step,
                                   const std::string& file,
                                   std::int64_t sequence,
                                   std::string_view text);

    /// What a step's stream held back when the step ended: one chunk to store after the last.
    struct Rest {
        std::string file; ///< empty: the step's log
        std::int64_t sequence = 0;
        std::string text;
        int step = 0;
    };
    /// The non-empty rests of step `step`'s streams, which are then forgotten.
    [[nodiscard]] std::vector<Rest> finish(std::int64_t build, int step);
    /// The non-empty rests of every stream of `build` still open (it ended without its steps'
    /// ends: a worker that sent no step end, or was lost), which are then forgotten.
    [[nodiscard]] std::vector<Rest> finish_build(std::int64_t build);

private:
    // `text` redacted as a stream of its own, nothing held back.
    [[nodiscard]] std::string redact_whole(std::string_view text) const;
    // The rests of `build`'s streams of step `step` (nullopt: of every step), forgotten.
    std::vector<Rest> take(std::int64_t build, std::optional<int> step);

    struct Stream {
        log::StreamRedactor redactor;
        std::int64_t next_sequence = 0;
    };
    using Key = std::tuple<std::int64_t, int, std::string>;
    std::vector<std::string> secrets_;
    std::mutex mutex_;
    std::map<Key, Stream> streams_;
};

} // namespace ci::master
