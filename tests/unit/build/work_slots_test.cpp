// Work directory slots: the lowest free slot per builder, released with the lease, never shared
// between threads or with another process (a real `flock` process holds a slot), a lost lease
// reported, and an older libci's checkout cleared from a builder's directory.

#include <algorithm>
#include <chrono>
#include <mutex>
#include <regex>
#include <set>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <ci/build/work_slots.h>

#include "support/background_process.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using ci::build::WorkSlots;

std::vector<int> slots_of(const std::vector<ci::build::WorkLease>& leases) {
    std::vector<int> out;
    out.reserve(leases.size());
    for (const auto& lease : leases) {
        out.push_back(lease.slot());
    }
    return out;
}

} // namespace

TEST_CASE("work slots: the lowest free slot of each builder, reused once released") {
    ci::test::TempDir dir;
    const auto root = dir / "work";
    WorkSlots slots(root);
    CHECK(slots.root() == root);

    auto first = slots.lease("linux/py3");
    REQUIRE_OK(first);
    CHECK(first->slot() == 0);
    CHECK(first->directory() == root / "linux_py3" / "0");
    CHECK(first->directory() == WorkSlots::directory(root, "linux/py3", 0));
    CHECK(std::filesystem::is_directory(first->directory()));
    CHECK(std::filesystem::exists(root / "linux_py3" / "0.lock"));
    CHECK(first->properties_file() == root / "linux_py3" / "0.properties");
    REQUIRE_OK(first->check());

    auto second = slots.lease("linux/py3");
    REQUIRE_OK(second);
    CHECK(second->slot() == 1);
    CHECK(second->directory() == root / "linux_py3" / "1");
    auto other_builder = slots.lease("docs");
    REQUIRE_OK(other_builder);
    CHECK(other_builder->slot() == 0);

    // Slot 0 released: the next build of the builder gets it back (a warm checkout).
    { auto released = std::move(*first); }
    auto third = slots.lease("linux/py3");
    REQUIRE_OK(third);
    CHECK(third->slot() == 0);
    auto fourth = slots.lease("linux/py3");
    REQUIRE_OK(fourth);
    CHECK(fourth->slot() == 2);

    // A lease may outlive its WorkSlots; moving one keeps the slot held once.
    std::optional<ci::build::WorkLease> kept;
    {
        WorkSlots short_lived(dir / "other");
        auto lease = short_lived.lease("b");
        REQUIRE_OK(lease);
        kept.emplace(std::move(*lease));
    }
    REQUIRE_OK(kept->check());
    kept.reset();
}

TEST_CASE("work slots: threads leasing at once get different slots") {
    ci::test::TempDir dir;
    WorkSlots slots(dir / "work");
    constexpr int count = 8;
    std::mutex mutex;
    std::vector<ci::build::WorkLease> leases;
    std::vector<std::string> errors;
    {
        std::vector<std::jthread> threads;
        threads.reserve(static_cast<std::size_t>(count));
        for (int i = 0; i < count; ++i) {
            threads.emplace_back([&] {
                auto lease = slots.lease("tests");
                const std::lock_guard lock(mutex);
                if (lease) {
                    leases.push_back(std::move(*lease));
                } else {
                    errors.push_back(lease.error().message);
                }
            });
        }
    }
    CHECK(errors.empty());
    auto numbers = slots_of(leases);
    std::ranges::sort(numbers);
    CHECK(numbers == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("work slots: a slot another process holds is skipped") {
    ci::test::TempDir dir;
    const auto root = dir / "work";
    // Another WorkSlots over the same root stands for another ci-worker in the same directory:
    // the slots' lock files keep them apart.
    WorkSlots ours(root);
    WorkSlots theirs(root);
    auto held = theirs.lease("tests");
    REQUIRE_OK(held);
    CHECK(held->slot() == 0);
    auto lease = ours.lease("tests");
    REQUIRE_OK(lease);
    CHECK(lease->slot() == 1);

    // A real process holding slot 2's lock.
    const auto flock = ci::test::find_program("flock");
    if (!flock) {
        MESSAGE("flock(1) not found: the part with a real process is skipped");
        return;
    }
    std::filesystem::create_directories(root / "tests");
    // --close: only flock itself holds the lock, not the shell it runs, so the lock is gone
    // once stop() has reaped flock (the shell, killed too, could otherwise still hold it).
    ci::test::BackgroundProcess holder({*flock,
                                        "--exclusive",
                                        "--close",
                                        (root / "tests" / "2.lock").string(),
                                        "/bin/sh",
                                        "-c",
                                        "echo locked; exec sleep 60"});
    REQUIRE(holder.wait_for_line(std::regex("locked"), std::chrono::seconds(10)));
    auto next = ours.lease("tests");
    REQUIRE_OK(next);
    CHECK(next->slot() == 3);
    holder.stop();
    auto freed = ours.lease("tests");
    REQUIRE_OK(freed);
    CHECK(freed->slot() == 2);
}

TEST_CASE("work slots: a lease whose lock file or directory went away says so") {
    ci::test::TempDir dir;
    WorkSlots slots(dir / "work");

    auto lease = slots.lease("tests");
    REQUIRE_OK(lease);
    std::filesystem::remove(dir / "work" / "tests" / "0.lock");
    auto lost = lease->check();
    REQUIRE_FALSE(lost.has_value());
    CHECK(lost.error().code == ci::ErrorCode::Conflict);
    CHECK(lost.error().message.find("0.lock was removed or replaced") != std::string::npos);

    // Replaced: another lease took a new lock file at the same path.
    auto other = slots.lease("replaced");
    REQUIRE_OK(other);
    std::filesystem::remove(dir / "work" / "replaced" / "0.lock");
    WorkSlots elsewhere(dir / "work");
    auto taker = elsewhere.lease("replaced");
    REQUIRE_OK(taker);
    CHECK(taker->slot() == 0);
    CHECK_FALSE(other->check().has_value());
    REQUIRE_OK(taker->check());

    auto gone = slots.lease("gone");
    REQUIRE_OK(gone);
    std::filesystem::remove_all(gone->directory());
    auto missing = gone->check();
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message.find("is gone") != std::string::npos);
}

TEST_CASE("work slots: an older libci's checkout in a builder's directory is cleared") {
    ci::test::TempDir dir;
    const auto builder = dir / "work" / "tests";
    ci::test::write_file(builder / ".git" / "HEAD", "ref: refs/heads/master\n");
    ci::test::write_file(builder / "src" / "main.c", "int main() {}\n");
    ci::test::write_file(builder / "README", "old checkout\n");
    ci::test::write_file(builder / "7", "a file named like a slot\n");
    ci::test::write_file(builder / "1" / "kept.txt", "a slot's checkout\n");
    ci::test::write_file(builder / "1.lock", "");

    WorkSlots slots(dir / "work");
    auto lease = slots.lease("tests");
    REQUIRE_OK(lease);
    CHECK(lease->slot() == 0);
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(builder)) {
        names.insert(entry.path().filename().string());
    }
    CHECK(names == std::set<std::string>{"0", "0.lock", "1", "1.lock"});
    CHECK(std::filesystem::exists(builder / "1" / "kept.txt"));

    // Without a .git there, nothing is removed.
    ci::test::write_file(dir / "work" / "plain" / "notes.txt", "mine\n");
    auto plain = slots.lease("plain");
    REQUIRE_OK(plain);
    CHECK(std::filesystem::exists(dir / "work" / "plain" / "notes.txt"));
}

TEST_CASE("work slots: a work root that cannot be created is an error naming it") {
    ci::test::TempDir dir;
    ci::test::write_file(dir / "file", "not a directory\n");
    WorkSlots slots(dir / "file" / "work");
    auto lease = slots.lease("tests");
    REQUIRE_FALSE(lease.has_value());
    CHECK(lease.error().code == ci::ErrorCode::Io);
    CHECK(lease.error().message.find((dir / "file" / "work").string()) != std::string::npos);
}
