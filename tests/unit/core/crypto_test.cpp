#include <set>
#include <string>

#include <doctest/doctest.h>

#include <ci/core/crypto.h>

#include "support/require_ok.h"
#include "support/temp_dir.h"

using ci::crypto::to_hex;

TEST_CASE("crypto: sha256 matches FIPS 180-2 vectors") {
    CHECK(to_hex(ci::crypto::sha256("")) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(to_hex(ci::crypto::sha256("abc")) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("crypto: incremental sha256 equals one-shot, and resets after finish") {
    ci::crypto::Sha256 hasher;
    hasher.update("ab");
    hasher.update("");
    hasher.update("c");
    CHECK(to_hex(hasher.finish()) == to_hex(ci::crypto::sha256("abc")));
    hasher.update("abc");
    CHECK(to_hex(hasher.finish()) == to_hex(ci::crypto::sha256("abc")));

    std::string big(1 << 20, 'x');
    ci::crypto::Sha256 chunked;
    for (std::size_t i = 0; i < big.size(); i += 4096) {
        chunked.update(std::string_view(big).substr(i, 4096));
    }
    CHECK(chunked.finish() == ci::crypto::sha256(big));
}

TEST_CASE("crypto: hmac-sha256 matches RFC 4231 vectors") {
    // Test case 2.
    CHECK(to_hex(ci::crypto::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // Test case 1: key 0x0b * 20.
    CHECK(to_hex(ci::crypto::hmac_sha256(std::string(20, '\x0b'), "Hi There")) ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    // Test cases 6 and 7: a key longer than the block (hashed first), a message longer too.
    const std::string long_key(131, '\xaa');
    CHECK(to_hex(ci::crypto::hmac_sha256(
              long_key, "Test Using Larger Than Block-Size Key - Hash Key First")) ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    CHECK(to_hex(ci::crypto::hmac_sha256(
              long_key,
              "This is a test using a larger than block-size key and a larger than block-size "
              "data. The key needs to be hashed before being used by the HMAC algorithm.")) ==
          "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST_CASE("crypto: constant_time_equal") {
    CHECK(ci::crypto::constant_time_equal("", ""));
    CHECK(ci::crypto::constant_time_equal("sha256=abc", "sha256=abc"));
    CHECK_FALSE(ci::crypto::constant_time_equal("sha256=abc", "sha256=abd"));
    CHECK_FALSE(ci::crypto::constant_time_equal("sha256=abc", "sha256=ab"));
    CHECK_FALSE(ci::crypto::constant_time_equal("", "x"));
}

TEST_CASE("crypto: random tokens are hex, of the asked length, and distinct") {
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        auto token = ci::crypto::random_token(16);
        REQUIRE_OK(token);
        CHECK(token->size() == 32);
        CHECK(token->find_first_not_of("0123456789abcdef") == std::string::npos);
        seen.insert(*token);
    }
    CHECK(seen.size() == 100);
    CHECK_FALSE(ci::crypto::random_token(0));
}

TEST_CASE("crypto: sha256_file equals sha256 of the content, across read blocks") {
    ci::test::TempDir dir;
    std::string content((3U << 20U) + 17, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) {
        content[i] = static_cast<char>((i * 131) % 251);
    }
    const auto path = ci::test::write_file(dir / "payload.bin", content);
    auto digest = ci::crypto::sha256_file(path);
    REQUIRE_OK(digest);
    CHECK(*digest == ci::crypto::sha256(content));
    auto empty = ci::crypto::sha256_file(ci::test::write_file(dir / "empty", ""));
    REQUIRE_OK(empty);
    CHECK(to_hex(*empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    auto missing = ci::crypto::sha256_file(dir / "absent");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == ci::ErrorCode::NotFound);
    CHECK(missing.error().message.find("absent") != std::string::npos);
}

TEST_CASE("crypto: base64 matches RFC 4648 vectors") {
    CHECK(ci::crypto::base64_encode("") == "");
    CHECK(ci::crypto::base64_encode("f") == "Zg==");
    CHECK(ci::crypto::base64_encode("fo") == "Zm8=");
    CHECK(ci::crypto::base64_encode("foo") == "Zm9v");
    CHECK(ci::crypto::base64_encode("foobar") == "Zm9vYmFy");
    CHECK(ci::crypto::base64_encode(std::string("\xff\x00\x10", 3)) == "/wAQ");
}
