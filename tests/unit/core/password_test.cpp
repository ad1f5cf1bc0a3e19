// Password hashes: scrypt and PBKDF2-HMAC-SHA256 against RFC 7914's vectors and against hashes
// made by Python's hashlib (an implementation that is not OpenSSL's EVP_KDF wrapper here), the
// PHC strings' parsing, and what a wrong one is told.

#include <doctest/doctest.h>

#include <ci/core/crypto.h>
#include <ci/core/password.h>

namespace {

using ci::crypto::PasswordHash;

std::string hex(const std::string& bytes) {
    return ci::crypto::to_hex(
        std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

// Made with Python 3.11's hashlib (the test's oracle):
//   salt = b"libci-test-salt!"; pw = "correct horse \u00e9".encode()
//   hashlib.scrypt(pw, salt=salt, n=2**10, r=8, p=2, dklen=32)
//   hashlib.pbkdf2_hmac("sha256", pw, salt, 1000, 32)
// written as PHC strings with unpadded base64.
constexpr const char* python_password = "correct horse \xc3\xa9";
constexpr const char* python_scrypt =
    "$scrypt$ln=10,r=8,p=2$bGliY2ktdGVzdC1zYWx0IQ$zJSXuDWJ2HWCHbh2FAZdqz/l4j52LTu/k13XSAMC/gI";
constexpr const char* python_pbkdf2 =
    "$pbkdf2-sha256$i=1000$bGliY2ktdGVzdC1zYWx0IQ$jWA1e9l7C7RRKOusxmO0R/B9A3iPnx1AlgRc1AVbc1E";

} // namespace

TEST_CASE("password: scrypt matches RFC 7914") {
    auto empty = ci::crypto::scrypt("", "", 16, 1, 1, 64);
    REQUIRE(empty);
    CHECK(hex(*empty) == "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
                         "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906");
    auto nacl = ci::crypto::scrypt("password", "NaCl", 1024, 8, 16, 64);
    REQUIRE(nacl);
    CHECK(hex(*nacl) == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
                        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
    CHECK_FALSE(ci::crypto::scrypt("password", "NaCl", 1000, 8, 1, 32)); // N not a power of 2
}

TEST_CASE("password: PBKDF2-HMAC-SHA256 matches RFC 7914 section 11") {
    auto one = ci::crypto::pbkdf2_sha256("passwd", "salt", 1, 64);
    REQUIRE(one);
    CHECK(hex(*one) == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                       "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
    auto many = ci::crypto::pbkdf2_sha256("Password", "NaCl", 80000, 64);
    REQUIRE(many);
    CHECK(hex(*many) == "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
                        "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
}

TEST_CASE("password: hashes made by Python's hashlib verify") {
    for (const auto* text : {python_scrypt, python_pbkdf2}) {
        CAPTURE(text);
        auto hash = ci::crypto::parse_password_hash(text);
        REQUIRE(hash);
        CHECK(ci::crypto::verify_password(*hash, python_password));
        CHECK_FALSE(ci::crypto::verify_password(*hash, "correct horse e"));
        CHECK_FALSE(ci::crypto::verify_password(*hash, ""));
        CHECK(ci::crypto::format_password_hash(*hash) == text);
    }
    auto scrypt = ci::crypto::parse_password_hash(python_scrypt);
    REQUIRE(scrypt);
    CHECK(scrypt->kind == PasswordHash::Kind::Scrypt);
    CHECK(scrypt->log2_n == 10);
    CHECK(scrypt->r == 8);
    CHECK(scrypt->p == 2);
    CHECK(scrypt->salt == "libci-test-salt!");
}

TEST_CASE("password: hash_password makes a strong, salted hash that verifies") {
    auto first = ci::crypto::hash_password("s3cret");
    REQUIRE(first);
    CHECK(first->kind == PasswordHash::Kind::Scrypt);
    CHECK(first->log2_n == 15);
    CHECK(first->r == 8);
    CHECK(first->salt.size() == 16);
    CHECK(first->hash.size() == 32);
    const auto text = ci::crypto::format_password_hash(*first);
    CHECK(text.starts_with("$scrypt$ln=15,r=8,p=1$"));
    auto parsed = ci::crypto::parse_password_hash(text);
    REQUIRE(parsed);
    CHECK(*parsed == *first);
    CHECK(ci::crypto::verify_password(*parsed, "s3cret"));
    CHECK_FALSE(ci::crypto::verify_password(*parsed, "s3cret "));
    auto second = ci::crypto::hash_password("s3cret");
    REQUIRE(second);
    CHECK(second->salt != first->salt); // salted: the same password hashes differently

    auto pbkdf2 = ci::crypto::hash_password("s3cret", PasswordHash::Kind::Pbkdf2Sha256);
    REQUIRE(pbkdf2);
    CHECK(ci::crypto::format_password_hash(*pbkdf2).starts_with("$pbkdf2-sha256$i=600000$"));
    CHECK(ci::crypto::verify_password(*pbkdf2, "s3cret"));
}

TEST_CASE("password: a wrong hash says what is wrong, never repeating the text") {
    const auto error = [](const std::string& text) {
        auto parsed = ci::crypto::parse_password_hash(text);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().code == ci::ErrorCode::InvalidArgument);
        CHECK(parsed.error().message.find(text.substr(0, 12)) == std::string::npos);
        return parsed.error().message;
    };
    CHECK(error("hunter2-plain-password").find("expected $scrypt$") != std::string::npos);
    CHECK(error("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
              .find("scrypt or pbkdf2-sha256") != std::string::npos);
    const std::string salt = "bGliY2ktdGVzdC1zYWx0IQ";
    const std::string key = "zJSXuDWJ2HWCHbh2FAZdqz/l4j52LTu/k13XSAMC/gI";
    CHECK(error("$scrypt$ln=25,r=8,p=1$" + salt + "$" + key).find("out of range") !=
          std::string::npos);
    CHECK(error("$scrypt$ln=20,r=32,p=1$" + salt + "$" + key).find("256 MiB") != std::string::npos);
    CHECK(error("$scrypt$r=8,ln=10,p=1$" + salt + "$" + key).find("ln=N,r=R,p=P") !=
          std::string::npos);
    CHECK(error("$scrypt$ln=10,r=8,p=1,x=2$" + salt + "$" + key).find("ln=N,r=R,p=P") !=
          std::string::npos);
    CHECK(error("$scrypt$ln=1x,r=8,p=1$" + salt + "$" + key).find("ln=N,r=R,p=P") !=
          std::string::npos);
    CHECK(error("$pbkdf2-sha256$i=999$" + salt + "$" + key).find("1000") != std::string::npos);
    CHECK(error("$pbkdf2-sha256$i=99999999999$" + salt + "$" + key).find("1000") !=
          std::string::npos);
    CHECK(error("$scrypt$ln=10,r=8,p=1$" + salt + "$" + key + "$").find("expected") !=
          std::string::npos);
    CHECK(error("$scrypt$ln=10,r=8,p=1$not base64!$" + key).find("base64") != std::string::npos);
    CHECK(error("$scrypt$ln=10,r=8,p=1$c2FsdA$" + key).find("salt") != std::string::npos);
    CHECK(error("$scrypt$ln=10,r=8,p=1$" + salt + "$c2hvcnQ").find("hash must") !=
          std::string::npos);
    CHECK(error(std::string("$scrypt$ln=10,r=8,p=1$") + '\0' + "$" + key).find("base64") !=
          std::string::npos);
}

TEST_CASE("crypto: base64_decode is strict") {
    CHECK(ci::crypto::base64_decode("") == std::string());
    CHECK(ci::crypto::base64_decode("Zg") == std::string("f"));
    CHECK(ci::crypto::base64_decode("Zg==") == std::string("f"));
    CHECK(ci::crypto::base64_decode("Zm8") == std::string("fo"));
    CHECK(ci::crypto::base64_decode("Zm8=") == std::string("fo"));
    CHECK(ci::crypto::base64_decode("Zm9v") == std::string("foo"));
    CHECK(ci::crypto::base64_decode("+/+/") == std::string("\xfb\xff\xbf"));
    for (const std::string text : {"Z", "Zh", "Zg=", "Z===", "Zm9v=", "Zm 9v", "Zm9-", "=Zm9"}) {
        CAPTURE(text);
        CHECK_FALSE(ci::crypto::base64_decode(text));
    }
    // Round trip of every byte value.
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all.push_back(static_cast<char>(i));
    }
    CHECK(ci::crypto::base64_decode(ci::crypto::base64_encode(all)) == all);
}
