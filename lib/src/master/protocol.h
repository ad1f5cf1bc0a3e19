#pragma once

/// \file
/// The worker protocol: how `ci-worker start` and the master talk over TCP.
///
/// Workers connect out to the master's `buildmaster.worker_port` (a worker needs no inbound
/// port). Each message is one JSON object on one line. The conversation:
/// 0. TLS 1.3 (worker::tls; unless the master's config says `buildmaster.tls: false`): the worker
///    checks the master's certificate (a pinned fingerprint, or a CA and the host name);
/// 1. master → worker: Challenge (a fresh random nonce);
/// 2. worker → master: Hello with its name and proof = hex HMAC-SHA256(secret_key(secret),
///    bound_challenge(nonce, TLS exporter)): the secret itself never crosses the network, and a
///    proof is useless on any other connection;
/// 3. master → worker: Welcome (with the heartbeat interval) or Refused, then it closes. A
///    latent worker's first secret is a one-time token; its Welcome says to rotate: both sides
///    replace the secret by next_secret(secret, nonce), which the next connection must prove
///    (so a token in an instance's user-data is worthless once used, and no secret is sent);
///    right after the Welcome, before anything else, one WorkerFile per file of the worker's
///    class (`worker_files`, ci/config/worker_files.h): the worker writes each (0600, atomically)
///    before it reads the next message, so no build starts without them; a worker that cannot
///    write one ends its connection with an error instead of running builds;
/// 4. then, in any order: Heartbeat (worker, every interval: a worker silent for three intervals
///    is lost), StartBuild / StopBuild (master), and the build's progress (worker): CheckedOut,
///    StepStarted, LogChunk (numbered per step, so that a chunk sent twice is stored once),
///    StepFinished, BuildFinished. Drain (worker) asks for no more builds: the worker is
///    stopping after its current ones (or its instance got a rebalance recommendation).
///    Interrupted (worker) says its instance is going away (a spot interruption notice): the
///    master sends it no more builds, ends its running ones as retry and queues their requests
///    at once. Shutdown (master) asks the worker to exit: it takes no new builds (it answers
///    a StartBuild that crossed the Shutdown with a retry), finishes its running ones and
///    then exits (status 0); it also exits if the connection drops meanwhile, rather than
///    reconnecting. At a trigger step the worker sends Trigger and the step
///    waits for the master's Triggered (its result): the master requests the builds (once per
///    request and step, however often it is asked) and, for `wait: true`, answers when they
///    have ended.
/// A LogChunk is a message with bytes after its line: its line says how many ("size"), and
/// that many bytes of the step's output follow, as they are (a log is any bytes; escaping it
/// into JSON, and unescaping it, cost more than the rest of the master's log ingest). An
/// UploadChunk's file bytes follow its line the same way.
/// An upload step (worker): UploadBegin (the manifest: paths, sizes, modes, SHA-256s), the
/// master's UploadReady (how much of each file it kept from an earlier attempt, or why it
/// refuses), UploadChunks of at most upload_chunk bytes for the rest, UploadEnd; the master's
/// UploadDone says how it ended (checked, stored, after_upload run).
/// Pure: encode() and decode() do no I/O.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <ci/build/runner.h>
#include <ci/core/build_result.h>
#include <ci/core/error.h>

namespace ci::master::protocol {

/// The version both sides speak; a Hello of another version is refused. (2: log chunks' text
/// after their line instead of in it; 3: TLS, and proofs bound to the TLS connection; 4: trigger
/// steps, builds without a repository, pinned merge targets; 5: step controls, set_property and
/// test results: an older worker would run such steps without them; 6: step log files; 7: spot
/// interruptions and upload steps; 8: worker_files, which an older worker would ignore, and
/// proofs keyed by the SHA-256 of the secret, so that a master may store keys, never secrets.)
inline constexpr int version = 9;
/// The longest line either side accepts (a log chunk is far smaller).
inline constexpr std::size_t max_line = std::size_t{4} * 1024 * 1024;
/// The most file bytes an UploadChunk carries (the worker sends this much at a time, so that
/// heartbeats and other builds' logs get their turn on the connection).
inline constexpr std::size_t upload_chunk = std::size_t{256} * 1024;

struct Challenge {
    std::string nonce;
    int protocol = version;
};
struct Hello {
    std::string name;
    std::string proof; ///< proof(secret, nonce)
    int max_builds = 1;
    int protocol = version;
};
struct Welcome {
    int heartbeat_seconds = 10;
    /// For a worker that logged in with a one-time token (EC2 latent workers): from now on its
    /// secret is next_secret(secret, nonce). Both sides derive it; it is never sent.
    bool rotate = false;
};
struct Refused {
    std::string reason;
};
/// Master → worker, right after the Welcome: a file the worker's class has (`worker_files`).
/// `content` is a secret: on the wire as hex ("hex"), at most config::max_worker_file_size
/// bytes; never logged by either side.
struct WorkerFile {
    std::string path; ///< DEST: absolute, or relative to the worker's work directory
    std::string content;
};
struct Heartbeat {};
struct Drain {};
/// Master → worker: finish the running builds, take no new ones, then exit (`POST
/// /api/v1/workers/NAME/shutdown`).
struct Shutdown {};
/// Worker → master: the worker's instance is being interrupted (EC2 spot instance-action).
struct Interrupted {
    std::string reason; ///< for people: what the metadata service said
};
struct StartBuild {
    build::BuildSpec spec;
};
struct StopBuild {
    std::int64_t build = 0;
};
struct CheckedOut {
    std::int64_t build = 0;
    std::string branch_tip;
    std::string target_tip;
    std::string merge_commit;
};
struct StepStarted {
    std::int64_t build = 0;
    int step = 0;
    std::string name;
};
struct LogChunk {
    std::int64_t build = 0;
    int step = 0;
    std::int64_t sequence = 0; ///< 0, 1, 2, ... per step
    std::string text;
};
/// A chunk of one of a step's log files (StepSpec::logfiles); like a LogChunk, its text follows
/// its line.
struct LogFileChunk {
    std::int64_t build = 0;
    int step = 0;
    std::string name;          ///< the log file's name ([A-Za-z0-9_.-], 1 to 64 characters)
    std::int64_t sequence = 0; ///< 0, 1, 2, ... per step and name
    std::string text;
};
struct StepFinished {
    std::int64_t build = 0;
    int step = 0;
    BuildResult result = BuildResult::Success; ///< "result" on the wire: to_string(result)
    std::optional<int> exit_code;
    std::string description;
    std::optional<build::TestResults> tests;       ///< "tests": what its JUnit files held
    std::map<std::string, std::string> properties; ///< "properties": what set_property set
};
/// Worker → master: build `build` reached trigger step `step`.
struct Trigger {
    std::int64_t build = 0;
    int step = 0;
};
/// Master → worker: how trigger step `step` of build `build` ended.
struct Triggered {
    std::int64_t build = 0;
    int step = 0;
    BuildResult result = BuildResult::Success; ///< "result" on the wire: to_string(result)
    std::string description;                   ///< what was requested, or why it failed
};
/// One entry of an upload's manifest: a regular file or a directory, by its path relative to
/// the uploaded directory (build::check_relative_path), with its size, permission bits and
/// hex SHA-256 (files only).
struct UploadFile {
    std::string path;
    bool directory = false;
    std::int64_t size = 0;
    int mode = 0644;
    std::string sha256;
};
/// Worker → master: upload step `step` of build `build` sends these files as the results'
/// `name` (the step's `to`).
struct UploadBegin {
    std::int64_t build = 0;
    int step = 0;
    std::string name;
    std::vector<UploadFile> files;
};
/// Master → worker: the answer to an UploadBegin: how many bytes of each file (in manifest
/// order) the master has already, kept from an earlier attempt (a reconnect): the worker sends
/// the rest. `error` non-empty: refused (the size cap, a bad name), the step fails with it.
struct UploadReady {
    std::int64_t build = 0;
    int step = 0;
    std::vector<std::int64_t> have;
    std::string error;
};
/// Worker → master: bytes of file `file` (its index in the manifest) from `offset`; like a
/// LogChunk's text, they follow the line ("size" of them).
struct UploadChunk {
    std::int64_t build = 0;
    int step = 0;
    std::int64_t file = 0;
    std::int64_t offset = 0;
    std::string data;
};
/// Worker → master: every byte of the upload was sent.
struct UploadEnd {
    std::int64_t build = 0;
    int step = 0;
};
/// Master → worker: how the upload ended: the files checked (size, SHA-256) and in place,
/// after_upload run. `log`: what to show in the step's log (after_upload's output).
struct UploadDone {
    std::int64_t build = 0;
    int step = 0;
    BuildResult result = BuildResult::Success; ///< "result" on the wire: to_string(result)
    std::string description;
    std::string log;
};
struct BuildFinished {
    std::int64_t build = 0;
    BuildResult result = BuildResult::Success; ///< "result" on the wire: to_string(result)
    std::string message;
};

using Message = std::variant<Challenge,
                             Hello,
                             Welcome,
                             Refused,
                             WorkerFile,
                             Heartbeat,
                             Drain,
                             Shutdown,
                             Interrupted,
                             StartBuild,
                             StopBuild,
                             CheckedOut,
                             StepStarted,
                             LogChunk,
                             LogFileChunk,
                             StepFinished,
                             BuildFinished,
                             Trigger,
                             Triggered,
                             UploadBegin,
                             UploadReady,
                             UploadChunk,
                             UploadEnd,
                             UploadDone>;

/// The StepFinished that reports `outcome` of step `step` of build `build`.
[[nodiscard]] StepFinished
step_finished(std::int64_t build, int step, const build::StepOutcome& outcome);

/// One line of JSON, ending in '\n'; for a LogChunk, followed by its text.
[[nodiscard]] std::string encode(const Message& message);

/// Reads one line (with or without its '\n'). Fails with InvalidArgument naming what is wrong:
/// not JSON, no "type", an unknown type, a missing or mistyped field, a log chunk's "size" over
/// max_line. A LogChunk's text comes back sized but not read: see following_bytes().
[[nodiscard]] Result<Message> decode(std::string_view line);

/// Where the bytes that follow a decoded message's line go: a LogChunk's or LogFileChunk's
/// text (an UploadChunk's data), sized by decode() from its line's "size", for the reader to
/// fill with exactly that many bytes from the connection. nullptr for every other message
/// (nothing follows their line).
[[nodiscard]] std::string* following_bytes(Message& message);

/// What a Hello's proof covers: the Challenge's nonce and, on a TLS connection, the connection's
/// exporter value (RFC 5705; worker::tls::exporter), as "NONCE:EXPORTER". A proof is then
/// worthless on any other connection, e.g. one a TLS-terminating proxy opens to relay it. On a
/// plaintext connection (`buildmaster.tls: false`; `exporter` empty) it is the nonce alone.
[[nodiscard]] std::string bound_challenge(std::string_view nonce, std::string_view exporter);

/// The key a secret's proofs and its next secret are computed with: hex SHA-256 of the secret.
/// The master keeps only this of a latent worker's secret, in memory and in its store, so that a
/// restarted master adopts the worker without having stored its token or secret (though the key
/// is enough to answer a challenge: the store stays a secret).
[[nodiscard]] std::string secret_key(std::string_view secret);

/// hex HMAC-SHA256(secret_key(secret), challenge): what a Hello proves (challenge:
/// bound_challenge()).
[[nodiscard]] std::string proof(std::string_view secret, std::string_view nonce);
/// proof() from the secret's key.
[[nodiscard]] std::string proof_with_key(std::string_view key, std::string_view nonce);

/// hex HMAC-SHA256(secret_key(secret), "next:" + nonce): a latent worker's secret after a login
/// with `secret` answering `nonce` (the bound challenge the proof covered; see Welcome::rotate).
[[nodiscard]] std::string next_secret(std::string_view secret, std::string_view nonce);
/// next_secret() from the secret's key.
[[nodiscard]] std::string next_secret_with_key(std::string_view key, std::string_view nonce);

} // namespace ci::master::protocol
