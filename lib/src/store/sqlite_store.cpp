// The SQLite store. Only this folder includes <sqlite3.h>.

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>

#include <ci/store/store.h>

#include "core/json.h"
#include "store/log_codec.h"

namespace ci::store {

namespace {

// Each entry upgrades the schema from version i to i + 1. Never edit a released entry: add one.
const std::vector<const char*> migrations = {
    // 0 -> 1
    R"sql(
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters VALUES ('change_id', 0);
CREATE TABLE changes (
    id INTEGER PRIMARY KEY, repository TEXT NOT NULL, branch TEXT NOT NULL,
    is_tag INTEGER NOT NULL, revision TEXT NOT NULL, author TEXT NOT NULL,
    comments TEXT NOT NULL, files TEXT, at_ms INTEGER NOT NULL);
CREATE TABLE waits (
    scheduler TEXT NOT NULL, repository TEXT NOT NULL, branch TEXT NOT NULL,
    is_tag INTEGER NOT NULL, started_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,
    revision TEXT NOT NULL, change_ids TEXT NOT NULL,
    PRIMARY KEY (scheduler, repository, branch));
CREATE TABLE periodic (scheduler TEXT PRIMARY KEY, next_run_ms INTEGER NOT NULL);
CREATE TABLE build_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scheduler TEXT NOT NULL, builder TEXT NOT NULL,
    repository TEXT NOT NULL, branch TEXT NOT NULL, revision TEXT NOT NULL,
    change_ids TEXT NOT NULL, reason TEXT NOT NULL, properties TEXT NOT NULL,
    collapsible INTEGER NOT NULL, state TEXT NOT NULL, submitted_ms INTEGER NOT NULL,
    claimed_by TEXT NOT NULL DEFAULT '');
CREATE INDEX build_requests_by_state ON build_requests (state, builder, id);
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL REFERENCES build_requests,
    builder TEXT NOT NULL, worker TEXT NOT NULL, started_ms INTEGER NOT NULL,
    finished_ms INTEGER, result TEXT, branch_tip TEXT, target_tip TEXT, merge_commit TEXT);
CREATE TABLE steps (
    build_id INTEGER NOT NULL REFERENCES builds, number INTEGER NOT NULL, name TEXT NOT NULL,
    started_ms INTEGER, finished_ms INTEGER, result TEXT, exit_code INTEGER,
    PRIMARY KEY (build_id, number));
CREATE TABLE log_chunks (
    build_id INTEGER NOT NULL, step INTEGER NOT NULL, sequence INTEGER NOT NULL,
    compressed BLOB NOT NULL, PRIMARY KEY (build_id, step, sequence));
CREATE TABLE workers (
    name TEXT PRIMARY KEY, class TEXT NOT NULL, state TEXT NOT NULL, last_seen_ms INTEGER);
CREATE TABLE latent_instances (
    instance_id TEXT PRIMARY KEY, class TEXT NOT NULL, client_token TEXT NOT NULL,
    state TEXT NOT NULL, launched_ms INTEGER NOT NULL, terminated_ms INTEGER);
)sql",
    // 1 -> 2: collapsed requests record the request that builds them.
    R"sql(
ALTER TABLE build_requests ADD COLUMN collapsed_into INTEGER;
)sql",
    // 2 -> 3: webhook deliveries already stored; builds listed by builder and by request.
    R"sql(
CREATE TABLE deliveries (id TEXT PRIMARY KEY, received_ms INTEGER NOT NULL);
CREATE INDEX deliveries_by_time ON deliveries (received_ms);
CREATE INDEX builds_by_builder ON builds (builder, id);
CREATE INDEX builds_by_request ON builds (request_id);
)sql",
    // 3 -> 4: fewer pages written per webhook. Waits keyed by their primary key alone (one
    // B-tree, updated in place, instead of a rowid table whose REPLACE moved the row, plus its
    // key index); deliveries appended in arrival order without indexes (they are read once, at
    // start, newest first, and checked in memory) instead of a random-key index and a time index.
    R"sql(
CREATE TABLE waits_by_key (
    scheduler TEXT NOT NULL, repository TEXT NOT NULL, branch TEXT NOT NULL,
    is_tag INTEGER NOT NULL, started_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,
    revision TEXT NOT NULL, change_ids TEXT NOT NULL,
    PRIMARY KEY (scheduler, repository, branch)) WITHOUT ROWID;
INSERT INTO waits_by_key SELECT * FROM waits;
DROP TABLE waits;
ALTER TABLE waits_by_key RENAME TO waits;
CREATE TABLE webhook_deliveries (received_ms INTEGER NOT NULL, id TEXT NOT NULL);
INSERT INTO webhook_deliveries (received_ms, id)
    SELECT received_ms, id FROM deliveries ORDER BY received_ms;
DROP TABLE deliveries;
)sql",
    // 4 -> 5: the refs the poller last saw of each repository (a JSON object of ref -> commit
    // id), so that pushes made while the master was down are found when it starts.
    R"sql(
CREATE TABLE polled_refs (
    repository TEXT PRIMARY KEY, url TEXT NOT NULL, refs TEXT NOT NULL,
    polled_ms INTEGER NOT NULL) WITHOUT ROWID;
)sql",
    // 5 -> 6: the reporters' outbox (commit statuses, chat messages): stored before they are
    // sent, marked once sent or given up, so that a restart neither loses nor repeats them.
    R"sql(
CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, reporter TEXT NOT NULL, payload TEXT NOT NULL,
    state TEXT NOT NULL, queued_ms INTEGER NOT NULL, done_ms INTEGER);
CREATE INDEX reports_by_state ON reports (reporter, state, id);
)sql",
    // 6 -> 7: requests of trigger steps: the merge their triggering build tested (pinned) and
    // the step that asked for them, once per (request, step, builder) whatever retries ask.
    R"sql(
ALTER TABLE build_requests ADD COLUMN pinned_target TEXT;
ALTER TABLE build_requests ADD COLUMN pinned_target_revision TEXT;
ALTER TABLE build_requests ADD COLUMN triggered_by_request INTEGER NOT NULL DEFAULT 0;
ALTER TABLE build_requests ADD COLUMN triggered_by_step INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX build_requests_by_trigger
    ON build_requests (triggered_by_request, triggered_by_step, builder)
    WHERE triggered_by_request != 0;
)sql",
    // 7 -> 8: how a step ended in words, its test results (JSON: counts and failed test names)
    // and the properties it set (JSON object); NULL in steps stored before.
    R"sql(
ALTER TABLE steps ADD COLUMN description TEXT;
ALTER TABLE steps ADD COLUMN tests TEXT;
ALTER TABLE steps ADD COLUMN properties TEXT;
)sql",
    // 8 -> 9: the chunks of steps' log files (logfiles), compressed as log chunks are.
    R"sql(
CREATE TABLE logfile_chunks (
    build_id INTEGER NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL,
    sequence INTEGER NOT NULL, compressed BLOB NOT NULL,
    PRIMARY KEY (build_id, step, name, sequence)) WITHOUT ROWID;
)sql",
    // 9 -> 10: EC2 instances keyed
    // by their launch's ClientToken, so that the intent is stored before RunInstances answers
    // with an id; their worker, type and market.
    R"sql(
CREATE TABLE pool_instances (
    client_token TEXT PRIMARY KEY, instance_id TEXT NOT NULL, class TEXT NOT NULL,
    state TEXT NOT NULL, launched_ms INTEGER NOT NULL, terminated_ms INTEGER,
    worker TEXT NOT NULL, instance_type TEXT NOT NULL, market TEXT NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO pool_instances
    SELECT client_token, instance_id, class, state, launched_ms, terminated_ms, '', '',
           'on-demand' FROM latent_instances;
DROP TABLE latent_instances;
ALTER TABLE pool_instances RENAME TO latent_instances;
)sql",
    // 10 -> 11: the keys of EC2 workers' secrets (SHA-256 of the token, then of each rotated
    // secret), so that a restarted master adopts the instances whose workers can log in again.
    R"sql(
CREATE TABLE worker_keys (
    worker TEXT PRIMARY KEY, class TEXT NOT NULL, key TEXT NOT NULL, previous_key TEXT NOT NULL,
    token_expires_ms INTEGER) WITHOUT ROWID;
)sql",
};

// The columns read_build() reads, in its order.
constexpr const char* build_columns =
    "id, request_id, builder, worker, started_ms, finished_ms, result, branch_tip, target_tip, "
    "merge_commit";

// The columns read_request() reads, in its order.
constexpr const char* request_columns =
    "id, scheduler, builder, repository, branch, revision, change_ids, reason, properties, "
    "collapsible, state, submitted_ms, claimed_by, collapsed_into, pinned_target, "
    "pinned_target_revision, triggered_by_request, triggered_by_step";

std::int64_t to_ms(WallTime time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

WallTime from_ms(std::int64_t ms) {
    return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::milliseconds(ms)));
}

std::string join_ids(const std::vector<std::int64_t>& ids) {
    std::string out;
    for (const auto id : ids) {
        if (!out.empty()) {
            out += ',';
        }
        out += std::to_string(id);
    }
    return out;
}

std::vector<std::int64_t> split_ids(const std::string& text) {
    std::vector<std::int64_t> out;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto comma = std::min(text.find(',', start), text.size());
        out.push_back(std::stoll(text.substr(start, comma - start)));
        start = comma + 1;
    }
    return out;
}

std::string to_json(const std::vector<std::string>& values) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartArray();
    for (const auto& value : values) {
        writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    }
    writer.EndArray();
    return {buffer.GetString(), buffer.GetSize()};
}

std::string to_json(const std::map<std::string, std::string>& values) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    for (const auto& [name, value] : values) {
        writer.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
        writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    }
    writer.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

std::string to_json(const build::TestResults& tests) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    for (const auto& [key, value] : {std::pair{"passed", tests.passed},
                                     std::pair{"failed", tests.failed},
                                     std::pair{"skipped", tests.skipped},
                                     std::pair{"errors", tests.errors}}) {
        writer.Key(key);
        writer.Int(value);
    }
    writer.Key("failed_tests");
    writer.StartArray();
    for (const auto& name : tests.failed_tests) {
        writer.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    }
    writer.EndArray();
    writer.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

// What to_json(TestResults) wrote; nullopt for anything else.
std::optional<build::TestResults> tests_from_json(const std::string& text) {
    auto document = json::parse_object(text);
    if (!document) {
        return std::nullopt;
    }
    build::TestResults out;
    for (auto [key, field] : {std::pair{"passed", &out.passed},
                              std::pair{"failed", &out.failed},
                              std::pair{"skipped", &out.skipped},
                              std::pair{"errors", &out.errors}}) {
        const auto member = document->FindMember(key);
        if (member == document->MemberEnd() || !member->value.IsInt()) {
            return std::nullopt;
        }
        *field = member->value.GetInt();
    }
    const auto names = document->FindMember("failed_tests");
    if (names != document->MemberEnd() && names->value.IsArray()) {
        for (const auto& name : names->value.GetArray()) {
            if (name.IsString()) {
                out.failed_tests.emplace_back(name.GetString(), name.GetStringLength());
            }
        }
    }
    return out;
}

std::vector<std::string> list_from_json(const std::string& text) {
    std::vector<std::string> out;
    auto document = json::parse(text);
    if (document && document->IsArray()) {
        for (const auto& value : document->GetArray()) {
            if (value.IsString()) {
                out.emplace_back(value.GetString(), value.GetStringLength());
            }
        }
    }
    return out;
}

// A JSON object of strings; nullopt when the text is anything else.
std::optional<std::map<std::string, std::string>> strict_map_from_json(const std::string& text) {
    std::map<std::string, std::string> out;
    auto document = json::parse_object(text);
    if (!document) {
        return std::nullopt;
    }
    for (const auto& member : document->GetObject()) {
        if (!member.value.IsString()) {
            return std::nullopt;
        }
        out.emplace(std::string(member.name.GetString(), member.name.GetStringLength()),
                    std::string(member.value.GetString(), member.value.GetStringLength()));
    }
    return out;
}

std::map<std::string, std::string> map_from_json(const std::string& text) {
    return strict_map_from_json(text).value_or(std::map<std::string, std::string>{});
}

const char* state_name(RequestState state) {
    switch (state) {
    case RequestState::Pending:
        return "pending";
    case RequestState::Claimed:
        return "claimed";
    case RequestState::Completed:
        return "completed";
    case RequestState::Cancelled:
        return "cancelled";
    case RequestState::Collapsed:
        return "collapsed";
    }
    return "pending";
}

RequestState state_from(std::string_view name) {
    if (name == "claimed") {
        return RequestState::Claimed;
    }
    if (name == "completed") {
        return RequestState::Completed;
    }
    if (name == "cancelled") {
        return RequestState::Cancelled;
    }
    if (name == "collapsed") {
        return RequestState::Collapsed;
    }
    return RequestState::Pending;
}

// Prepared statements of one connection, kept for reuse: the ingest path runs the same dozen
// statements for every batch, and preparing them is a good part of a small batch's cost.
class StatementCache {
public:
    explicit StatementCache(sqlite3* db) : db_(db) {}
    ~StatementCache() {
        for (auto& [sql, entry] : entries_) {
            sqlite3_finalize(entry.statement);
        }
    }
    StatementCache(const StatementCache&) = delete;
    StatementCache& operator=(const StatementCache&) = delete;

    // A statement for `sql`: the cached one when it is free, else a new one (`owned`, to be
    // finalized by the caller).
    int take(const char* sql, sqlite3_stmt** out, bool& owned) {
        auto& entry = entries_[sql];
        if (entry.statement != nullptr && !entry.in_use) {
            entry.in_use = true;
            *out = entry.statement;
            owned = false;
            return SQLITE_OK;
        }
        if (entry.statement == nullptr) {
            const int code = sqlite3_prepare_v3(
                db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &entry.statement, nullptr);
            if (code != SQLITE_OK) {
                sqlite3_finalize(entry.statement);
                entry.statement = nullptr;
                *out = nullptr;
                owned = true;
                return code;
            }
            entry.in_use = true;
            *out = entry.statement;
            owned = false;
            return SQLITE_OK;
        }
        owned = true; // the cached one is in use (a statement inside a loop over another)
        return sqlite3_prepare_v2(db_, sql, -1, out, nullptr);
    }

    void give_back(sqlite3_stmt* statement) {
        sqlite3_reset(statement);
        sqlite3_clear_bindings(statement);
        for (auto& [sql, entry] : entries_) {
            if (entry.statement == statement) {
                entry.in_use = false;
                return;
            }
        }
    }

    [[nodiscard]] sqlite3* db() const { return db_; }

private:
    struct Entry {
        sqlite3_stmt* statement = nullptr;
        bool in_use = false;
    };
    sqlite3* db_;
    std::unordered_map<std::string, Entry> entries_;
};

// A prepared statement from the connection's cache, reset (or finalized) on every path.
class Statement {
public:
    Statement(StatementCache& cache, const char* sql) : cache_(cache) {
        code_ = cache.take(sql, &statement_, owned_);
    }
    ~Statement() {
        if (owned_) {
            sqlite3_finalize(statement_);
        } else if (statement_ != nullptr) {
            cache_.give_back(statement_);
        }
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    [[nodiscard]] int prepared() const noexcept { return code_; }
    Statement& bind(int index, std::int64_t value) {
        sqlite3_bind_int64(statement_, index, value);
        return *this;
    }
    Statement& bind(int index, const std::string& value) {
        sqlite3_bind_text(
            statement_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& bind_null(int index) {
        sqlite3_bind_null(statement_, index);
        return *this;
    }
    Statement& bind(int index, std::optional<WallTime> value) {
        return value ? bind(index, to_ms(*value)) : bind_null(index);
    }
    Statement& bind(int index, std::optional<int> value) {
        return value ? bind(index, static_cast<std::int64_t>(*value)) : bind_null(index);
    }
    Statement& bind(int index, std::optional<std::int64_t> value) {
        return value ? bind(index, *value) : bind_null(index);
    }
    Statement& bind(int index, const std::optional<std::string>& value) {
        return value ? bind(index, *value) : bind_null(index);
    }
    Statement& bind_blob(int index, const std::string& value) {
        sqlite3_bind_blob(
            statement_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
        return *this;
    }
    [[nodiscard]] std::optional<WallTime> time(int column) const {
        return is_null(column) ? std::nullopt : std::optional<WallTime>(from_ms(integer(column)));
    }
    [[nodiscard]] std::string blob(int column) const {
        const auto* data = static_cast<const char*>(sqlite3_column_blob(statement_, column));
        return data == nullptr
                   ? std::string()
                   : std::string(
                         data, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
    }
    /// SQLITE_ROW, SQLITE_DONE or an error code.
    int step() { return sqlite3_step(statement_); }
    void reset() {
        sqlite3_reset(statement_);
        sqlite3_clear_bindings(statement_);
    }
    [[nodiscard]] std::int64_t integer(int column) const {
        return sqlite3_column_int64(statement_, column);
    }
    [[nodiscard]] std::string text(int column) const {
        const auto* data = sqlite3_column_text(statement_, column);
        return data == nullptr ? std::string()
                               : std::string(reinterpret_cast<const char*>(data),
                                             static_cast<std::size_t>(
                                                 sqlite3_column_bytes(statement_, column)));
    }
    [[nodiscard]] bool is_null(int column) const {
        return sqlite3_column_type(statement_, column) == SQLITE_NULL;
    }

private:
    StatementCache& cache_;
    sqlite3_stmt* statement_ = nullptr;
    bool owned_ = true;
    int code_ = SQLITE_OK;
};

class SqliteStore final : public Store {
public:
    SqliteStore(sqlite3* db, std::string path)
        : db_(db), path_(std::move(path)), statements_(std::make_unique<StatementCache>(db)) {}
    ~SqliteStore() override {
        statements_.reset(); // finalized before the connection closes
        sqlite3_close_v2(db_);
    }
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    Status initialize(const SqliteOptions& options) {
        sqlite3_busy_timeout(db_, static_cast<int>(options.busy_timeout.count()));
        // Reading the version first also tells a file that is not a database.
        auto version = query_integer("PRAGMA user_version", "read the schema version");
        if (!version) {
            return fail(version.error());
        }
        if (*version > schema_version) {
            return fail(ErrorCode::Store,
                        fmt::format("{}: schema version {} is newer than this libci's {}; run a "
                                    "newer libci, or restore the database from before the "
                                    "upgrade",
                                    path_,
                                    *version,
                                    schema_version));
        }
        // WAL: readers do not block the writer; FULL: a commit is on disk when it returns.
        if (auto status = execute("PRAGMA journal_mode=WAL", "enable write-ahead logging");
            !status) {
            return status;
        }
        if (auto status =
                execute("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", "set durability");
            !status) {
            return status;
        }
        for (auto v = static_cast<std::size_t>(*version); v < migrations.size(); ++v) {
            const std::string script = fmt::format("BEGIN IMMEDIATE; {} PRAGMA user_version={}; "
                                                   "COMMIT;",
                                                   migrations[v],
                                                   v + 1);
            if (auto status = execute(script.c_str(), fmt::format("migrate to schema {}", v + 1));
                !status) {
                (void)execute("ROLLBACK", "roll back");
                return status;
            }
        }
        // The counter is what earlier versions reserved ids from; changes hold the ids in use.
        auto last = query_integer("SELECT max(coalesce((SELECT value FROM counters WHERE name = "
                                  "'change_id'), 0), coalesce((SELECT max(id) FROM changes), 0))",
                                  "find the newest change id");
        if (!last) {
            return fail(last.error());
        }
        next_change_id_ = *last + 1;
        return {};
    }

    Result<Written> write(const std::vector<Batch>& batches,
                          WallTime now,
                          const RequestReports& reports = {}) override {
        const std::lock_guard lock(mutex_);
        Written written;
        if (auto status = execute("BEGIN IMMEDIATE", "begin a write"); !status) {
            return fail(status.error());
        }
        auto status = write_batches(batches, now, written, reports);
        if (!status) {
            (void)execute("ROLLBACK", "roll back");
            return fail(status.error());
        }
        const auto commit_start = std::chrono::steady_clock::now();
        if (auto committed = execute("COMMIT", "commit"); !committed) {
            (void)execute("ROLLBACK", "roll back");
            return fail(committed.error());
        }
        written.commit_time = std::chrono::steady_clock::now() - commit_start;
        return written;
    }

    Result<std::vector<std::int64_t>> reserve_change_ids(std::size_t count) override {
        // In memory, without a transaction: a change's id is stored with the change, in the
        // write that uses it, and the next id after a restart is found from the stored changes
        // (initialize()). An id reserved by a write that then failed is skipped or, after a
        // restart, used again: it was never stored anywhere.
        const std::lock_guard lock(mutex_);
        std::vector<std::int64_t> ids(count);
        for (auto& id : ids) {
            id = next_change_id_++;
        }
        return ids;
    }

    Result<sched::SavedState> scheduler_state() override {
        const std::lock_guard lock(mutex_);
        sched::SavedState state;
        Statement waits(*statements_,
                        "SELECT scheduler, repository, branch, is_tag, started_ms, "
                        "deadline_ms, revision, change_ids FROM waits ORDER BY 1, 2, 3");
        if (waits.prepared() != SQLITE_OK) {
            return error("read waits");
        }
        int code = SQLITE_OK;
        while ((code = waits.step()) == SQLITE_ROW) {
            state.waits.push_back(sched::Wait{waits.text(0),
                                              waits.text(1),
                                              waits.text(2),
                                              waits.integer(3) != 0,
                                              from_ms(waits.integer(4)),
                                              from_ms(waits.integer(5)),
                                              waits.text(6),
                                              split_ids(waits.text(7))});
        }
        if (code != SQLITE_DONE) {
            return error("read waits");
        }
        Statement periodic(*statements_, "SELECT scheduler, next_run_ms FROM periodic");
        while ((code = periodic.step()) == SQLITE_ROW) {
            state.periodic_next_runs[periodic.text(0)] = from_ms(periodic.integer(1));
        }
        if (code != SQLITE_DONE) {
            return error("read periodic schedules");
        }
        return state;
    }

    Result<std::optional<sched::Change>> change(std::int64_t id) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_,
                            "SELECT repository, branch, is_tag, revision, author, comments, "
                            "files, at_ms FROM changes WHERE id = ?1");
        statement.bind(1, id);
        const int code = statement.step();
        if (code == SQLITE_DONE) {
            return std::optional<sched::Change>();
        }
        if (code != SQLITE_ROW) {
            return error(fmt::format("read change {}", id));
        }
        sched::Change change;
        change.id = id;
        change.repository = statement.text(0);
        change.branch = statement.text(1);
        change.is_tag = statement.integer(2) != 0;
        change.revision = statement.text(3);
        change.author = statement.text(4);
        change.comments = statement.text(5);
        if (!statement.is_null(6)) {
            change.files = list_from_json(statement.text(6));
        }
        change.when = from_ms(statement.integer(7));
        return std::optional<sched::Change>(std::move(change));
    }

    Result<std::vector<sched::Change>> recent_changes(int limit, std::int64_t before_id) override {
        const std::lock_guard lock(mutex_);
        return rows<sched::Change>(
            "SELECT id, repository, branch, is_tag, revision, author, comments, files, at_ms "
            "FROM changes WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2",
            [&](Statement& s) { s.bind(1, before_id).bind(2, std::int64_t{limit}); },
            [&](const Statement& row) {
                sched::Change change;
                change.id = row.integer(0);
                change.repository = row.text(1);
                change.branch = row.text(2);
                change.is_tag = row.integer(3) != 0;
                change.revision = row.text(4);
                change.author = row.text(5);
                change.comments = row.text(6);
                if (!row.is_null(7)) {
                    change.files = list_from_json(row.text(7));
                }
                change.when = from_ms(row.integer(8));
                return change;
            },
            "list changes");
    }

    Result<std::vector<std::string>> deliveries_since(WallTime since) override {
        const std::lock_guard lock(mutex_);
        // Appended in arrival order: read from the newest back to the first older one.
        Statement statement(*statements_,
                            "SELECT received_ms, id FROM webhook_deliveries ORDER BY rowid DESC");
        if (statement.prepared() != SQLITE_OK) {
            return error("read webhook deliveries");
        }
        const auto since_ms = to_ms(since);
        std::vector<std::string> out;
        int code = SQLITE_OK;
        while ((code = statement.step()) == SQLITE_ROW && statement.integer(0) >= since_ms) {
            out.push_back(statement.text(1));
        }
        if (code != SQLITE_ROW && code != SQLITE_DONE) {
            return error("read webhook deliveries");
        }
        std::ranges::reverse(out);
        return out;
    }

    Result<std::optional<BuildRequest>> request(std::int64_t id) override {
        const std::lock_guard lock(mutex_);
        const std::string sql =
            fmt::format("SELECT {} FROM build_requests WHERE id = ?1", request_columns);
        auto found = rows<BuildRequest>(
            sql.c_str(),
            [&](Statement& s) { s.bind(1, id); },
            [&](const Statement& row) { return read_request(row); },
            fmt::format("read build request {}", id));
        if (!found) {
            return fail(found.error());
        }
        if (found->empty()) {
            return std::optional<BuildRequest>();
        }
        return std::optional<BuildRequest>(std::move(found->front()));
    }

    Result<std::vector<BuildRequest>> requests(RequestState state) override {
        const std::lock_guard lock(mutex_);
        const std::string sql = fmt::format(
            "SELECT {} FROM build_requests WHERE state = ?1 ORDER BY id", request_columns);
        return rows<BuildRequest>(
            sql.c_str(),
            [&](Statement& s) { s.bind(1, std::string(state_name(state))); },
            [&](const Statement& row) { return read_request(row); },
            "read build requests");
    }

    Result<std::vector<BuildRequest>> requests_triggered_by(std::int64_t request) override {
        if (request <= 0) {
            return std::vector<BuildRequest>{}; // 0 marks "not triggered": never a trigger
        }
        const std::lock_guard lock(mutex_);
        // The partial index on (triggered_by_request, triggered_by_step, builder) serves it.
        const std::string sql = fmt::format("SELECT {} FROM build_requests WHERE "
                                            "triggered_by_request = ?1 ORDER BY "
                                            "triggered_by_step, id",
                                            request_columns);
        return rows<BuildRequest>(
            sql.c_str(),
            [&](Statement& s) { s.bind(1, request); },
            [&](const Statement& row) { return read_request(row); },
            fmt::format("read the requests triggered by request {}", request));
    }

    Result<std::optional<BuildRequest>> claim(const std::vector<std::string>& builders,
                                              const std::string& dispatcher) override {
        const std::lock_guard lock(mutex_);
        if (builders.empty()) {
            return std::optional<BuildRequest>();
        }
        // One write transaction: whoever else uses the file, the choice and the claim happen
        // together.
        if (auto status = execute("BEGIN IMMEDIATE", "claim a build request"); !status) {
            return fail(status.error());
        }
        auto claimed = claim_locked(builders, dispatcher);
        if (!claimed) {
            (void)execute("ROLLBACK", "roll back");
            return claimed;
        }
        if (auto status = execute("COMMIT", "claim a build request"); !status) {
            (void)execute("ROLLBACK", "roll back");
            return fail(status.error());
        }
        return claimed;
    }

    Status finish(std::int64_t request, RequestState state) override {
        const std::lock_guard lock(mutex_);
        return finish_locked(request, state);
    }

    Status finish_locked(std::int64_t request, RequestState state) {
        Statement statement(*statements_,
                            "UPDATE build_requests SET state = ?2, claimed_by = CASE WHEN "
                            "?2 = 'pending' THEN '' ELSE claimed_by END WHERE id = ?1 AND "
                            "state = 'claimed'");
        statement.bind(1, request).bind(2, std::string(state_name(state)));
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("finish build request {}", request)).error());
        }
        if (sqlite3_changes(db_) != 1) {
            return fail(ErrorCode::NotFound,
                        fmt::format("{}: build request {} is not claimed", path_, request));
        }
        return {};
    }

    Result<Triggered> trigger(std::int64_t request,
                              int step,
                              const std::vector<sched::RequestBuild>& requests,
                              WallTime now,
                              const RequestReports& reports = {}) override {
        const std::lock_guard lock(mutex_);
        // One write transaction: the check and the insert cannot be split by another writer.
        if (auto status = execute("BEGIN IMMEDIATE", "queue triggered build requests"); !status) {
            return fail(status.error());
        }
        auto triggered = trigger_locked(request, step, requests, now, reports);
        if (!triggered) {
            (void)execute("ROLLBACK", "roll back");
            return triggered;
        }
        if (auto status = execute("COMMIT", "queue triggered build requests"); !status) {
            (void)execute("ROLLBACK", "roll back");
            return fail(status.error());
        }
        return triggered;
    }

    Result<Triggered> trigger_locked(std::int64_t request,
                                     int step,
                                     const std::vector<sched::RequestBuild>& requests,
                                     WallTime now,
                                     const RequestReports& reports) {
        Triggered out;
        auto existing = rows<std::int64_t>(
            "SELECT id FROM build_requests WHERE triggered_by_request = ?1 AND "
            "triggered_by_step = ?2 ORDER BY id",
            [&](Statement& s) { s.bind(1, request).bind(2, std::int64_t{step}); },
            [](const Statement& row) { return row.integer(0); },
            fmt::format("read the requests of step {} of request {}", step, request));
        if (!existing) {
            return fail(existing.error());
        }
        if (!existing->empty()) {
            out.request_ids = std::move(*existing);
            return out;
        }
        Statement insert(*statements_, insert_request);
        if (insert.prepared() != SQLITE_OK) {
            return error("prepare a write");
        }
        for (auto build : requests) {
            build.triggered_by_request = request;
            build.triggered_by_step = step;
            bind_request(insert, build, now);
            const int code = insert.step();
            insert.reset();
            if (code != SQLITE_DONE) {
                return error(fmt::format(
                    "queue a build of {} for step {} of request {}", build.builder, step, request));
            }
            out.request_ids.push_back(sqlite3_last_insert_rowid(db_));
            if (reports) {
                if (auto status = insert_reports(
                        reports(BuildRequest{
                            out.request_ids.back(), build, RequestState::Pending, now, {}, {}}),
                        nullptr);
                    !status) {
                    return fail(status.error());
                }
            }
        }
        out.created = true;
        return out;
    }

    Result<bool> cancel(std::int64_t request,
                        const std::vector<OutboxMessage>& reports = {}) override {
        const std::lock_guard lock(mutex_);
        const auto what = fmt::format("cancel build request {}", request);
        bool cancelled = false;
        auto status = transaction(what, [&]() -> Status {
            Statement statement(*statements_,
                                "UPDATE build_requests SET state = 'cancelled' WHERE id = ?1 "
                                "AND state = 'pending'");
            statement.bind(1, request);
            if (statement.step() != SQLITE_DONE) {
                return fail(error(what).error());
            }
            cancelled = sqlite3_changes(db_) == 1;
            return cancelled ? insert_reports(reports, nullptr) : Status{};
        });
        if (!status) {
            return fail(status.error());
        }
        return cancelled;
    }

    Result<std::int64_t> start_build(std::int64_t request,
                                     const std::string& builder,
                                     const std::string& worker,
                                     WallTime now,
                                     const BuildReports& reports = {}) override {
        const std::lock_guard lock(mutex_);
        const auto what = fmt::format("start a build of request {}", request);
        std::int64_t id = 0;
        auto status = transaction(what, [&]() -> Status {
            Statement statement(*statements_,
                                "INSERT INTO builds (request_id, builder, worker, started_ms) "
                                "VALUES (?1, ?2, ?3, ?4)");
            statement.bind(1, request).bind(2, builder).bind(3, worker).bind(4, to_ms(now));
            if (statement.step() != SQLITE_DONE) {
                return fail(error(what).error());
            }
            id = sqlite3_last_insert_rowid(db_);
            return reports ? insert_reports(reports(id), nullptr) : Status{};
        });
        if (!status) {
            return fail(status.error());
        }
        return id;
    }

    Status update_build(const Build& build,
                        const std::vector<OutboxMessage>& reports = {}) override {
        const std::lock_guard lock(mutex_);
        return transaction(fmt::format("update build {}", build.id), [&]() -> Status {
            if (auto status = update_build_locked(build); !status) {
                return status;
            }
            return insert_reports(reports, nullptr);
        });
    }

    Status end_build(const Build& build,
                     RequestState request_state,
                     const std::vector<OutboxMessage>& reports = {}) override {
        const std::lock_guard lock(mutex_);
        return transaction(fmt::format("end build {}", build.id), [&]() -> Status {
            if (auto status = update_build_locked(build); !status) {
                return status;
            }
            if (auto status = finish_locked(build.request_id, request_state); !status) {
                return status;
            }
            return insert_reports(reports, nullptr);
        });
    }

    Status update_build_locked(const Build& build) {
        Statement statement(*statements_,
                            "UPDATE builds SET finished_ms = ?2, result = ?3, branch_tip = "
                            "?4, target_tip = ?5, merge_commit = ?6 WHERE id = ?1");
        statement.bind(1, build.id)
            .bind(2, build.finished)
            .bind(3, result_text(build.result))
            .bind(4, build.branch_tip)
            .bind(5, build.target_tip)
            .bind(6, build.merge_commit);
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("update build {}", build.id)).error());
        }
        if (sqlite3_changes(db_) != 1) {
            return fail(ErrorCode::NotFound, fmt::format("{}: no build {}", path_, build.id));
        }
        return {};
    }

    Result<std::optional<Build>> build(std::int64_t id) override {
        const std::lock_guard lock(mutex_);
        const std::string sql = fmt::format("SELECT {} FROM builds WHERE id = ?1", build_columns);
        auto found = rows<Build>(
            sql.c_str(),
            [&](Statement& s) { s.bind(1, id); },
            [&](const Statement& row) { return read_build(row); },
            fmt::format("read build {}", id));
        if (!found) {
            return fail(found.error());
        }
        if (found->empty()) {
            return std::optional<Build>();
        }
        return std::optional<Build>(std::move(found->front()));
    }

    Result<std::vector<Build>> builds(const BuildQuery& query) override {
        const std::lock_guard lock(mutex_);
        const std::string sql = fmt::format(
            "SELECT {} FROM builds WHERE (?1 = '' OR builder = ?1) AND (?2 IS NULL OR "
            "request_id = ?2) AND (?3 = 0 OR finished_ms IS NULL) AND (?4 = 0 OR id < ?4) "
            "ORDER BY id DESC LIMIT ?5",
            build_columns);
        return rows<Build>(
            sql.c_str(),
            [&](Statement& s) {
                s.bind(1, query.builder)
                    .bind(2, query.request)
                    .bind(3, std::int64_t{query.unfinished_only ? 1 : 0})
                    .bind(4, query.before_id)
                    .bind(5, std::int64_t{query.limit});
            },
            [&](const Statement& row) { return read_build(row); },
            "list builds");
    }

    Result<std::vector<BranchBuild>> latest_builds() override {
        const std::lock_guard lock(mutex_);
        // The newest build id of each group, then those builds with their requests' columns
        // (builds.id is the primary key: the outer lookup is by rowid).
        const std::string sql = fmt::format(
            "SELECT {}, repository, branch FROM (SELECT b.*, r.repository, r.branch FROM builds b "
            "JOIN build_requests r ON r.id = b.request_id WHERE b.id IN (SELECT MAX(b2.id) FROM "
            "builds b2 JOIN build_requests r2 ON r2.id = b2.request_id GROUP BY b2.builder, "
            "r2.repository, r2.branch))",
            build_columns);
        return rows<BranchBuild>(
            sql.c_str(),
            [](Statement&) {},
            [&](const Statement& row) -> Result<BranchBuild> {
                auto build = read_build(row);
                if (!build) {
                    return fail(build.error());
                }
                return BranchBuild{std::move(*build), row.text(10), row.text(11)};
            },
            "list the newest build of each branch");
    }

    Result<int> recover_unfinished(WallTime now) override {
        const std::lock_guard lock(mutex_);
        if (auto status = execute("BEGIN IMMEDIATE", "recover unfinished builds"); !status) {
            return fail(status.error());
        }
        Statement end(*statements_,
                      "UPDATE builds SET finished_ms = ?1, result = 'retry' WHERE finished_ms "
                      "IS NULL");
        end.bind(1, to_ms(now));
        if (end.step() != SQLITE_DONE) {
            (void)execute("ROLLBACK", "roll back");
            return error("recover unfinished builds");
        }
        const int ended = sqlite3_changes(db_);
        if (auto status = execute("UPDATE build_requests SET state = 'pending', claimed_by = '' "
                                  "WHERE state = 'claimed'",
                                  "return claimed requests to the queue");
            !status) {
            (void)execute("ROLLBACK", "roll back");
            return fail(status.error());
        }
        if (auto status = execute("COMMIT", "recover unfinished builds"); !status) {
            (void)execute("ROLLBACK", "roll back");
            return fail(status.error());
        }
        return ended;
    }

    Status save_step(const Step& step) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_,
                            "INSERT OR REPLACE INTO steps (build_id, number, name, started_ms, "
                            "finished_ms, result, exit_code, description, tests, properties) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
        statement.bind(1, step.build_id)
            .bind(2, static_cast<std::int64_t>(step.number))
            .bind(3, step.name)
            .bind(4, step.started)
            .bind(5, step.finished)
            .bind(6, result_text(step.result))
            .bind(7, step.exit_code)
            .bind(8, step.description)
            .bind(9, step.tests ? std::optional(to_json(*step.tests)) : std::nullopt)
            .bind(10,
                  step.properties.empty() ? std::nullopt : std::optional(to_json(step.properties)));
        if (statement.step() != SQLITE_DONE) {
            return fail(
                error(fmt::format("save step {} of build {}", step.number, step.build_id)).error());
        }
        return {};
    }

    Result<std::vector<Step>> steps(std::int64_t build) override {
        const std::lock_guard lock(mutex_);
        return rows<Step>(
            "SELECT number, name, started_ms, finished_ms, result, exit_code, description, "
            "tests, properties FROM steps WHERE build_id = ?1 ORDER BY number",
            [&](Statement& s) { s.bind(1, build); },
            [&](const Statement& row) -> Result<Step> {
                auto result = read_result(row, 4);
                if (!result) {
                    return fail(result.error().with_context(
                        fmt::format("step {} of build {}", row.integer(0), build)));
                }
                return Step{build,
                            static_cast<int>(row.integer(0)),
                            row.text(1),
                            row.time(2),
                            row.time(3),
                            *result,
                            row.is_null(5) ? std::nullopt
                                           : std::optional<int>(static_cast<int>(row.integer(5))),
                            row.is_null(6) ? std::string() : row.text(6),
                            row.is_null(7) ? std::nullopt : tests_from_json(row.text(7)),
                            row.is_null(8) ? std::map<std::string, std::string>{}
                                           : map_from_json(row.text(8))};
            },
            fmt::format("read steps of build {}", build));
    }

    Status append_log(std::int64_t build,
                      int step,
                      std::int64_t sequence,
                      std::string_view text) override {
        const std::lock_guard lock(mutex_);
        // INSERT OR IGNORE: a chunk sent again after a reconnection is stored once.
        Statement statement(*statements_, detail::insert_log_chunk_sql);
        statement.bind(1, build)
            .bind(2, static_cast<std::int64_t>(step))
            .bind(3, sequence)
            .bind_blob(4, detail::compress_log_text(text));
        if (statement.step() != SQLITE_DONE) {
            return fail(
                error(fmt::format("store log chunk {} of build {} step {}", sequence, build, step))
                    .error());
        }
        return {};
    }

    Result<std::string>
    log(std::int64_t build, int step, std::int64_t from, std::int64_t to) override {
        auto page = log_page(build, step, from, to, std::numeric_limits<std::size_t>::max());
        if (!page) {
            return fail(page.error());
        }
        return std::move(page->text);
    }

    Result<LogPage> log_page(std::int64_t build,
                             int step,
                             std::int64_t from,
                             std::int64_t to,
                             std::size_t max_bytes) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_,
                            "SELECT sequence, compressed FROM log_chunks WHERE build_id = "
                            "?1 AND step = ?2 AND sequence >= ?3 AND sequence < ?4 "
                            "ORDER BY sequence");
        statement.bind(1, build).bind(2, static_cast<std::int64_t>(step)).bind(3, from).bind(4, to);
        LogPage page;
        page.next = from;
        int code = SQLITE_OK;
        while ((code = statement.step()) == SQLITE_ROW) {
            const auto sequence = statement.integer(0);
            if (page.text.size() >= max_bytes) {
                page.more = true;
                page.next = sequence;
                return page;
            }
            auto text = detail::decompress_log_text(statement.blob(1));
            if (!text) {
                return fail(ErrorCode::Store,
                            fmt::format("{}: log chunk {} of build {} step {} is corrupt",
                                        path_,
                                        sequence,
                                        build,
                                        step));
            }
            page.text += *text;
            page.next = sequence + 1;
        }
        if (code != SQLITE_DONE) {
            return error(fmt::format("read the log of build {} step {}", build, step));
        }
        return page;
    }

    Status append_logfile(std::int64_t build,
                          int step,
                          const std::string& name,
                          std::int64_t sequence,
                          std::string_view text) override {
        const std::lock_guard lock(mutex_);
        const Unsynced unsynced(*this);
        Statement statement(*statements_,
                            "INSERT OR IGNORE INTO logfile_chunks VALUES (?1, ?2, ?3, ?4, ?5)");
        statement.bind(1, build)
            .bind(2, static_cast<std::int64_t>(step))
            .bind(3, name)
            .bind(4, sequence)
            .bind_blob(5, detail::compress_log_text(text));
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("store chunk {} of log file {} of build {} step {}",
                                          sequence,
                                          name,
                                          build,
                                          step))
                            .error());
        }
        return {};
    }

    Result<std::optional<std::string>>
    logfile(std::int64_t build, int step, const std::string& name) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_,
                            "SELECT sequence, compressed FROM logfile_chunks WHERE build_id = ?1 "
                            "AND step = ?2 AND name = ?3 ORDER BY sequence");
        statement.bind(1, build).bind(2, static_cast<std::int64_t>(step)).bind(3, name);
        std::optional<std::string> out;
        int code = SQLITE_OK;
        while ((code = statement.step()) == SQLITE_ROW) {
            auto text = detail::decompress_log_text(statement.blob(1));
            if (!text) {
                return fail(ErrorCode::Store,
                            fmt::format("{}: chunk {} of log file {} of build {} step {} is "
                                        "corrupt",
                                        path_,
                                        statement.integer(0),
                                        name,
                                        build,
                                        step));
            }
            out = out.value_or("") + *text;
        }
        if (code != SQLITE_DONE) {
            return error(fmt::format("read log file {} of build {} step {}", name, build, step));
        }
        return out;
    }

    Result<std::map<int, std::vector<std::string>>> logfile_names(std::int64_t build) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_,
                            "SELECT DISTINCT step, name FROM logfile_chunks WHERE build_id = ?1 "
                            "ORDER BY step, name");
        statement.bind(1, build);
        std::map<int, std::vector<std::string>> out;
        int code = SQLITE_OK;
        while ((code = statement.step()) == SQLITE_ROW) {
            out[static_cast<int>(statement.integer(0))].push_back(statement.text(1));
        }
        if (code != SQLITE_DONE) {
            return error(fmt::format("read the log file names of build {}", build));
        }
        return out;
    }

    Status save_worker(const WorkerRecord& worker) override {
        const std::lock_guard lock(mutex_);
        // Worker records are informational (the live state is in the master's memory): no fsync
        // of their own, so that 1,000 workers connecting cost no 1,000 disk syncs. The next
        // synchronous commit makes them durable too.
        const Unsynced unsynced(*this);
        Statement statement(*statements_, "INSERT OR REPLACE INTO workers VALUES (?1, ?2, ?3, ?4)");
        statement.bind(1, worker.name)
            .bind(2, worker.worker_class)
            .bind(3, worker.state)
            .bind(4, worker.last_seen);
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("save worker {}", worker.name)).error());
        }
        return {};
    }

    Result<std::vector<WorkerRecord>> workers() override {
        const std::lock_guard lock(mutex_);
        return rows<WorkerRecord>(
            "SELECT name, class, state, last_seen_ms FROM workers ORDER BY name",
            [](Statement&) {},
            [](const Statement& row) {
                return WorkerRecord{row.text(0), row.text(1), row.text(2), row.time(3)};
            },
            "read workers");
    }

    Status save_instance(const LatentInstance& instance) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_,
                            "INSERT OR REPLACE INTO latent_instances VALUES (?1, ?2, ?3, ?4, "
                            "?5, ?6, ?7, ?8, ?9)");
        statement.bind(1, instance.client_token)
            .bind(2, instance.instance_id)
            .bind(3, instance.worker_class)
            .bind(4, instance.state)
            .bind(5, to_ms(instance.launched))
            .bind(6, instance.terminated)
            .bind(7, instance.worker)
            .bind(8, instance.instance_type)
            .bind(9, instance.market);
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("save instance {} (launch {})",
                                          instance.instance_id,
                                          instance.client_token))
                            .error());
        }
        return {};
    }

    Result<std::vector<LatentInstance>> live_instances() override {
        const std::lock_guard lock(mutex_);
        return rows<LatentInstance>(
            "SELECT instance_id, class, client_token, state, launched_ms, terminated_ms, worker, "
            "instance_type, market FROM latent_instances WHERE state != 'terminated' ORDER BY "
            "launched_ms, client_token",
            [](Statement&) {},
            [](const Statement& row) {
                return LatentInstance{row.text(0),
                                      row.text(1),
                                      row.text(2),
                                      row.text(3),
                                      from_ms(row.integer(4)),
                                      row.time(5),
                                      row.text(6),
                                      row.text(7),
                                      row.text(8)};
            },
            "read latent instances");
    }

    Status save_worker_key(const WorkerKey& key) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_,
                            "INSERT OR REPLACE INTO worker_keys VALUES (?1, ?2, ?3, ?4, ?5)");
        statement.bind(1, key.worker)
            .bind(2, key.worker_class)
            .bind(3, key.key)
            .bind(4, key.previous_key)
            .bind(5, key.token_expires);
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("save the key of worker {}", key.worker)).error());
        }
        return {};
    }

    Status delete_worker_key(const std::string& worker) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_, "DELETE FROM worker_keys WHERE worker = ?1");
        statement.bind(1, worker);
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("delete the key of worker {}", worker)).error());
        }
        return {};
    }

    Result<std::vector<WorkerKey>> worker_keys() override {
        const std::lock_guard lock(mutex_);
        return rows<WorkerKey>(
            "SELECT worker, class, key, previous_key, token_expires_ms FROM worker_keys ORDER BY "
            "worker",
            [](Statement&) {},
            [](const Statement& row) {
                return WorkerKey{row.text(0), row.text(1), row.text(2), row.text(3), row.time(4)};
            },
            "read worker keys");
    }

    Result<std::optional<PolledRefs>> polled_refs(const std::string& repository) override {
        const std::lock_guard lock(mutex_);
        const std::string what = fmt::format("read the polled refs of {}", repository);
        // Raw columns first: damaged refs must be an error, never an empty baseline (against
        // which every ref would look new and build).
        struct Row {
            std::string url;
            std::string refs;
            std::int64_t polled_ms;
        };
        auto found = rows<Row>(
            "SELECT url, refs, polled_ms FROM polled_refs WHERE repository = ?1",
            [&](Statement& s) { s.bind(1, repository); },
            [](const Statement& row) {
                return Row{row.text(0), row.text(1), row.integer(2)};
            },
            what);
        if (!found) {
            return fail(found.error());
        }
        if (found->empty()) {
            return std::optional<PolledRefs>();
        }
        auto refs = strict_map_from_json(found->front().refs);
        if (!refs) {
            return fail(ErrorCode::Store,
                        fmt::format("{}: {}: the stored refs are not a JSON object of strings",
                                    path_,
                                    what));
        }
        return std::optional<PolledRefs>(PolledRefs{
            std::move(found->front().url), std::move(*refs), from_ms(found->front().polled_ms)});
    }

    Status save_polled_refs(const std::string& repository, const PolledRefs& refs) override {
        const std::lock_guard lock(mutex_);
        Statement statement(*statements_,
                            "INSERT OR REPLACE INTO polled_refs VALUES (?1, ?2, ?3, ?4)");
        statement.bind(1, repository)
            .bind(2, refs.url)
            .bind(3, to_json(refs.refs))
            .bind(4, to_ms(refs.polled));
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("save the polled refs of {}", repository)).error());
        }
        return {};
    }

    Result<std::vector<std::int64_t>> queue_reports(const std::string& reporter,
                                                    const std::vector<std::string>& payloads,
                                                    WallTime now) override {
        const std::lock_guard lock(mutex_);
        std::vector<OutboxMessage> messages;
        messages.reserve(payloads.size());
        for (const auto& payload : payloads) {
            messages.push_back(OutboxMessage{reporter, payload, now});
        }
        std::vector<std::int64_t> ids;
        auto status = transaction(
            fmt::format("queue {} message(s) of reporter {}", payloads.size(), reporter),
            [&] { return insert_reports(messages, &ids); });
        if (!status) {
            return fail(status.error());
        }
        return ids;
    }

    Result<std::vector<std::int64_t>>
    change_reports(const std::vector<OutboxMessage>& messages,
                   const std::vector<std::pair<std::int64_t, ReportState>>& finished,
                   WallTime now) override {
        const std::lock_guard lock(mutex_);
        std::vector<std::int64_t> ids;
        auto status = transaction(
            fmt::format(
                "queue {} and mark {} reporter message(s)", messages.size(), finished.size()),
            [&]() -> Status {
                for (const auto& [id, state] : finished) {
                    if (auto marked = finish_report_locked(id, state, now); !marked) {
                        return marked;
                    }
                }
                return insert_reports(messages, &ids);
            });
        if (!status) {
            return fail(status.error());
        }
        return ids;
    }

    Result<std::vector<QueuedReport>> queued_reports(const std::string& reporter,
                                                     std::int64_t after = 0) override {
        const std::lock_guard lock(mutex_);
        return rows<QueuedReport>(
            "SELECT id, reporter, payload, queued_ms FROM reports WHERE reporter = ?1 AND "
            "state = 'queued' AND id > ?2 ORDER BY id",
            [&](Statement& s) { s.bind(1, reporter).bind(2, after); },
            [](const Statement& row) {
                return QueuedReport{
                    row.integer(0), row.text(1), row.text(2), from_ms(row.integer(3))};
            },
            fmt::format("read the queued messages of reporter {}", reporter));
    }

    Status finish_report(std::int64_t id, ReportState state, WallTime now) override {
        const std::lock_guard lock(mutex_);
        return finish_report_locked(id, state, now);
    }

    Status finish_report_locked(std::int64_t id, ReportState state, WallTime now) {
        Statement statement(*statements_,
                            "UPDATE reports SET state = ?2, done_ms = ?3 WHERE id = ?1");
        statement.bind(1, id)
            .bind(2,
                  std::string(state == ReportState::Sent      ? "sent"
                              : state == ReportState::Dropped ? "dropped"
                                                              : "queued"))
            .bind(3, to_ms(now));
        if (statement.step() != SQLITE_DONE) {
            return fail(error(fmt::format("mark reporter message {}", id)).error());
        }
        return {};
    }

    Result<std::int64_t> prune(WallTime before) override {
        const std::lock_guard lock(mutex_);
        const char* what = "prune the history";
        if (auto status = execute("BEGIN IMMEDIATE", what); !status) {
            return fail(status.error());
        }
        std::int64_t removed = 0;
        for (const char* sql : {"DELETE FROM webhook_deliveries WHERE received_ms < ?1",
                                "DELETE FROM reports WHERE state != 'queued' AND done_ms < ?1"}) {
            Statement statement(*statements_, sql);
            statement.bind(1, to_ms(before));
            if (statement.step() != SQLITE_DONE) {
                auto failed = error(what);
                (void)execute("ROLLBACK", "roll back");
                return fail(failed.error());
            }
            removed += sqlite3_changes(db_);
        }
        if (auto committed = execute("COMMIT", what); !committed) {
            (void)execute("ROLLBACK", "roll back");
            return fail(committed.error());
        }
        return removed;
    }

private:
    // While it lives, commits do not sync (synchronous=NORMAL); FULL again after. For writes
    // whose durability the next synchronous commit provides (WAL commits are ordered). Not OFF:
    // OFF also skips the syncs of a checkpoint that such a commit may run, and a checkpoint
    // copies earlier, acknowledged commits into the database file; NORMAL still syncs those.
    class Unsynced {
    public:
        explicit Unsynced(SqliteStore& store) : store_(store) {
            (void)store_.execute("PRAGMA synchronous=NORMAL", "unsynced write");
        }
        ~Unsynced() { (void)store_.execute("PRAGMA synchronous=FULL", "unsynced write"); }
        Unsynced(const Unsynced&) = delete;
        Unsynced& operator=(const Unsynced&) = delete;

    private:
        SqliteStore& store_;
    };

    Result<std::optional<BuildRequest>> claim_locked(const std::vector<std::string>& builders,
                                                     const std::string& dispatcher) {
        std::string placeholders;
        for (std::size_t i = 0; i < builders.size(); ++i) {
            placeholders += fmt::format("{}?{}", i == 0 ? "" : ", ", i + 1);
        }
        const std::string oldest_sql = fmt::format(
            "SELECT {} FROM build_requests WHERE state = 'pending' AND builder IN ({}) ORDER BY "
            "id LIMIT 1",
            request_columns,
            placeholders);
        auto oldest = rows<BuildRequest>(
            oldest_sql.c_str(),
            [&](Statement& s) {
                for (std::size_t i = 0; i < builders.size(); ++i) {
                    s.bind(static_cast<int>(i + 1), builders[i]);
                }
            },
            [&](const Statement& row) { return read_request(row); },
            "claim a build request");
        if (!oldest) {
            return fail(oldest.error());
        }
        if (oldest->empty()) {
            return std::optional<BuildRequest>();
        }
        BuildRequest chosen = oldest->front();
        if (chosen.request.collapsible) {
            auto group = rows<BuildRequest>(
                fmt::format("SELECT {} FROM build_requests WHERE state = 'pending' AND "
                            "collapsible = 1 AND builder = ?1 AND repository = ?2 AND branch = ?3 "
                            "ORDER BY id",
                            request_columns)
                    .c_str(),
                [&](Statement& s) {
                    s.bind(1, chosen.request.builder)
                        .bind(2, chosen.request.repository)
                        .bind(3, chosen.request.branch);
                },
                [&](const Statement& row) { return read_request(row); },
                "collapse build requests");
            if (!group) {
                return fail(group.error());
            }
            // The newest request builds; it covers every change of the ones merged into it.
            chosen = group->back();
            std::vector<std::int64_t> changes;
            for (const auto& member : *group) {
                changes.insert(changes.end(),
                               member.request.change_ids.begin(),
                               member.request.change_ids.end());
            }
            std::ranges::sort(changes);
            const auto [first, last] = std::ranges::unique(changes);
            changes.erase(first, last);
            Statement merge(*statements_,
                            "UPDATE build_requests SET state = 'collapsed', collapsed_into = "
                            "?2 WHERE id = ?1");
            for (std::size_t i = 0; i + 1 < group->size(); ++i) {
                merge.bind(1, (*group)[i].id).bind(2, chosen.id);
                if (merge.step() != SQLITE_DONE) {
                    return error("collapse build requests");
                }
                merge.reset();
            }
            Statement cover(*statements_,
                            "UPDATE build_requests SET change_ids = ?2 WHERE id = ?1");
            cover.bind(1, chosen.id).bind(2, join_ids(changes));
            if (cover.step() != SQLITE_DONE) {
                return error("collapse build requests");
            }
            chosen.request.change_ids = changes;
        }
        Statement claim(*statements_,
                        "UPDATE build_requests SET state = 'claimed', claimed_by = ?2 WHERE "
                        "id = ?1 AND state = 'pending'");
        claim.bind(1, chosen.id).bind(2, dispatcher);
        if (claim.step() != SQLITE_DONE || sqlite3_changes(db_) != 1) {
            return error("claim a build request");
        }
        chosen.state = RequestState::Claimed;
        chosen.claimed_by = dispatcher;
        return std::optional<BuildRequest>(std::move(chosen));
    }

    // Runs a query: `bind` sets its parameters, `read` makes a T of each row.
    template <class T, class Bind, class Read>
    Result<std::vector<T>> rows(const char* sql, Bind bind, Read read, std::string_view what) {
        Statement statement(*statements_, sql);
        if (statement.prepared() != SQLITE_OK) {
            return error(what);
        }
        bind(statement);
        std::vector<T> out;
        int code = SQLITE_OK;
        while ((code = statement.step()) == SQLITE_ROW) {
            if constexpr (requires { read(statement).has_value(); }) {
                // A reader that can refuse a row (text that names no known value).
                auto row = read(statement);
                if (!row) {
                    return fail(ErrorCode::Store,
                                fmt::format("{}: {}: {}", path_, what, row.error().message));
                }
                out.push_back(std::move(*row));
            } else {
                out.push_back(read(statement));
            }
        }
        if (code != SQLITE_DONE) {
            return error(what);
        }
        return out;
    }

    std::unexpected<Error> error(std::string_view what) const {
        return fail(ErrorCode::Store,
                    fmt::format("{}: {}: {}", path_, what, sqlite3_errmsg(db_)),
                    sqlite3_extended_errcode(db_));
    }

    // Runs `body` in one write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back when it or
    // the commit fails. Called with the lock held; `body` must not begin another.
    Status transaction(std::string_view what, const std::function<Status()>& body) {
        if (auto status = execute("BEGIN IMMEDIATE", what); !status) {
            return status;
        }
        if (auto status = body(); !status) {
            (void)execute("ROLLBACK", "roll back");
            return status;
        }
        if (auto committed = execute("COMMIT", what); !committed) {
            (void)execute("ROLLBACK", "roll back");
            return committed;
        }
        return {};
    }

    // Adds `messages` to the outbox as Queued (inside a transaction, the lock held); their ids
    // go to `ids` when given.
    Status insert_reports(const std::vector<OutboxMessage>& messages,
                          std::vector<std::int64_t>* ids) {
        for (const auto& message : messages) {
            Statement statement(*statements_,
                                "INSERT INTO reports (reporter, payload, state, queued_ms) "
                                "VALUES (?1, ?2, 'queued', ?3)");
            statement.bind(1, message.reporter)
                .bind(2, message.payload)
                .bind(3, to_ms(message.queued));
            if (statement.step() != SQLITE_DONE) {
                return fail(
                    error(fmt::format("queue a message of reporter {}", message.reporter)).error());
            }
            if (ids != nullptr) {
                ids->push_back(sqlite3_last_insert_rowid(db_));
            }
        }
        return {};
    }

    Status execute(const char* sql, std::string_view what) {
        if (std::strchr(sql, ';') == nullptr) {
            // One statement (BEGIN, COMMIT, a PRAGMA): from the cache, not parsed again.
            Statement statement(*statements_, sql);
            int code = statement.prepared();
            if (code == SQLITE_OK) {
                while ((code = statement.step()) == SQLITE_ROW) {
                }
            }
            if (code != SQLITE_DONE) {
                return fail(error(what).error());
            }
            return {};
        }
        char* message = nullptr;
        const int code = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
        if (code != SQLITE_OK) {
            const std::string text = message != nullptr ? message : sqlite3_errstr(code);
            sqlite3_free(message);
            return fail(ErrorCode::Store,
                        fmt::format("{}: {}: {}", path_, what, text),
                        sqlite3_extended_errcode(db_));
        }
        return {};
    }

    Result<std::int64_t> query_integer(const char* sql, std::string_view what) {
        Statement statement(*statements_, sql);
        if (statement.prepared() != SQLITE_OK || statement.step() != SQLITE_ROW) {
            return error(what);
        }
        return statement.integer(0);
    }

    static Result<Build> read_build(const Statement& row) {
        auto result = read_result(row, 6);
        if (!result) {
            return fail(result.error().with_context(fmt::format("build {}", row.integer(0))));
        }
        return Build{row.integer(0),
                     row.integer(1),
                     row.text(2),
                     row.text(3),
                     from_ms(row.integer(4)),
                     row.time(5),
                     *result,
                     row.text(7),
                     row.text(8),
                     row.text(9)};
    }

    // A result column: NULL or '' while running, else one of to_string(BuildResult).
    static Result<std::optional<BuildResult>> read_result(const Statement& row, int column) {
        if (row.is_null(column) || row.text(column).empty()) {
            return std::optional<BuildResult>();
        }
        auto parsed = parse_build_result(row.text(column));
        if (!parsed) {
            return fail(parsed.error());
        }
        return std::optional<BuildResult>(*parsed);
    }

    static std::optional<std::string> result_text(std::optional<BuildResult> result) {
        if (!result) {
            return std::nullopt;
        }
        return std::string(to_string(*result));
    }

    static BuildRequest read_request(const Statement& row) {
        BuildRequest out;
        out.id = row.integer(0);
        out.request.scheduler = row.text(1);
        out.request.builder = row.text(2);
        out.request.repository = row.text(3);
        out.request.branch = row.text(4);
        out.request.revision = row.text(5);
        out.request.change_ids = split_ids(row.text(6));
        out.request.reason = row.text(7);
        out.request.properties = map_from_json(row.text(8));
        out.request.collapsible = row.integer(9) != 0;
        out.state = state_from(row.text(10));
        out.submitted = from_ms(row.integer(11));
        out.claimed_by = row.text(12);
        if (!row.is_null(13)) {
            out.collapsed_into = row.integer(13);
        }
        if (!row.is_null(14)) {
            out.request.pinned_merge = sched::PinnedMerge{row.text(14), row.text(15)};
        }
        out.request.triggered_by_request = row.integer(16);
        out.request.triggered_by_step = static_cast<int>(row.integer(17));
        return out;
    }

    // The statement that queues one request (bind it with bind_request).
    static constexpr const char* insert_request =
        "INSERT INTO build_requests (scheduler, builder, repository, branch, revision, "
        "change_ids, reason, properties, collapsible, state, submitted_ms, pinned_target, "
        "pinned_target_revision, triggered_by_request, triggered_by_step) VALUES (?1, ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?11, ?12, ?13, ?14)";

    static void bind_request(Statement& statement, const sched::RequestBuild& build, WallTime now) {
        statement.bind(1, build.scheduler)
            .bind(2, build.builder)
            .bind(3, build.repository)
            .bind(4, build.branch)
            .bind(5, build.revision)
            .bind(6, join_ids(build.change_ids))
            .bind(7, build.reason)
            .bind(8, to_json(build.properties))
            .bind(9, build.collapsible ? 1 : 0)
            .bind(10, to_ms(now))
            .bind(13, build.triggered_by_request)
            .bind(14, std::int64_t{build.triggered_by_step});
        if (build.pinned_merge) {
            statement.bind(11, build.pinned_merge->target)
                .bind(12, build.pinned_merge->target_revision);
        } else {
            statement.bind_null(11).bind_null(12);
        }
    }

    Status write_batches(const std::vector<Batch>& batches,
                         WallTime now,
                         Written& written,
                         const RequestReports& reports) {
        Statement change(*statements_,
                         "INSERT INTO changes (id, repository, branch, is_tag, revision, "
                         "author, comments, files, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                         "?7, ?8, ?9)");
        Statement save_wait(*statements_,
                            "INSERT OR REPLACE INTO waits VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                            "?7, ?8)");
        Statement clear_wait(*statements_,
                             "DELETE FROM waits WHERE scheduler = ?1 AND repository = ?2 "
                             "AND branch = ?3");
        Statement save_periodic(*statements_, "INSERT OR REPLACE INTO periodic VALUES (?1, ?2)");
        Statement delivery(*statements_, "INSERT INTO webhook_deliveries VALUES (?2, ?1)");
        Statement request(*statements_, insert_request);
        for (const auto* statement :
             {&change, &save_wait, &clear_wait, &save_periodic, &request, &delivery}) {
            if (statement->prepared() != SQLITE_OK) {
                return fail(error("prepare a write").error());
            }
        }
        const auto run = [&](Statement& statement, std::string_view what) -> Status {
            const int code = statement.step();
            statement.reset();
            if (code != SQLITE_DONE) {
                return fail(error(what).error());
            }
            return {};
        };
        for (const auto& batch : batches) {
            for (const auto& id : batch.deliveries) {
                delivery.bind(1, id).bind(2, to_ms(now));
                if (auto status = run(delivery, "record a webhook delivery"); !status) {
                    return status;
                }
            }
            for (const auto& c : batch.changes) {
                change.bind(1, c.id)
                    .bind(2, c.repository)
                    .bind(3, c.branch)
                    .bind(4, c.is_tag ? 1 : 0)
                    .bind(5, c.revision)
                    .bind(6, c.author)
                    .bind(7, c.comments)
                    .bind(9, to_ms(c.when));
                if (c.files) {
                    change.bind(8, to_json(*c.files));
                } else {
                    change.bind_null(8);
                }
                if (auto status = run(change, fmt::format("store change {}", c.id)); !status) {
                    return status;
                }
                written.change_ids.push_back(c.id);
            }
            for (const auto& action : batch.actions) {
                Status status;
                if (const auto* wait = std::get_if<sched::SaveWait>(&action)) {
                    const auto& w = wait->wait;
                    save_wait.bind(1, w.scheduler)
                        .bind(2, w.repository)
                        .bind(3, w.branch)
                        .bind(4, w.is_tag ? 1 : 0)
                        .bind(5, to_ms(w.started))
                        .bind(6, to_ms(w.deadline))
                        .bind(7, w.revision)
                        .bind(8, join_ids(w.change_ids));
                    status = run(save_wait, "save a wait");
                } else if (const auto* clear = std::get_if<sched::ClearWait>(&action)) {
                    clear_wait.bind(1, clear->scheduler)
                        .bind(2, clear->repository)
                        .bind(3, clear->branch);
                    status = run(clear_wait, "clear a wait");
                } else if (const auto* periodic = std::get_if<sched::SavePeriodic>(&action)) {
                    save_periodic.bind(1, periodic->scheduler).bind(2, to_ms(periodic->next_run));
                    status = run(save_periodic, "save a periodic schedule");
                } else if (const auto* build = std::get_if<sched::RequestBuild>(&action)) {
                    bind_request(request, *build, now);
                    status = run(request, "queue a build request");
                    written.request_ids.push_back(sqlite3_last_insert_rowid(db_));
                    if (status && reports) {
                        status = insert_reports(reports(BuildRequest{written.request_ids.back(),
                                                                     *build,
                                                                     RequestState::Pending,
                                                                     now,
                                                                     {},
                                                                     {}}),
                                                nullptr);
                    }
                }
                if (!status) {
                    return status;
                }
            }
        }
        return {};
    }

    sqlite3* db_;
    std::string path_;
    std::unique_ptr<StatementCache> statements_;
    std::mutex mutex_;
    std::int64_t next_change_id_ = 1; ///< the next id reserve_change_ids() hands out
};

} // namespace

Result<std::unique_ptr<Store>> open_sqlite(const std::filesystem::path& path,
                                           SqliteOptions options) {
    sqlite3* db = nullptr;
    const int code =
        sqlite3_open_v2(path.c_str(),
                        &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr);
    if (code != SQLITE_OK) {
        std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code);
        sqlite3_close_v2(db);
        return fail(ErrorCode::Store, fmt::format("{}: open: {}", path.string(), message), code);
    }
    auto store = std::make_unique<SqliteStore>(db, path.string());
    if (auto status = store->initialize(options); !status) {
        return fail(status.error());
    }
    return std::unique_ptr<Store>(std::move(store));
}

} // namespace ci::store
