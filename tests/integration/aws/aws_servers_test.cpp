// The S3 and EC2 clients against real servers on 127.0.0.1: moto_server (which verifies SigV4
// once authentication is on) and s3rver (a second S3 implementation, for pagination). A server
// that is not installed makes its tests SKIP loudly, naming what is missing.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <regex>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <pugixml.hpp>

#include <ci/aws/ec2.h>
#include <ci/aws/s3.h>
#include <ci/aws/sigv4.h>
#include <ci/core/clock.h>
#include <ci/http/client.h>

#include "support/background_process.h"
#include "support/require_ok.h"
#include "support/skip.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;

std::optional<std::string> environment(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        return std::nullopt;
    }
    return std::string(value);
}

std::optional<std::string> moto_program() {
    if (auto configured = environment("LIBCI_MOTO_SERVER")) {
        return configured;
    }
    return ci::test::find_program("moto_server");
}

std::shared_ptr<ci::http::Client> http_client() {
    ci::http::ClientOptions options;
    options.retry = ci::aws::aws_retry_policy();
    options.retry.max_attempts = 2;
    options.timeout = 30s;
    return ci::http::make_client(options);
}

// moto_server with authentication switched on after three unauthenticated calls, which mint
// the access key the tests use.
struct Moto {
    std::unique_ptr<ci::test::BackgroundProcess> process;
    std::string endpoint;
    ci::aws::Credentials credentials;
};

// An IAM call during moto's unauthenticated window: signed with throw-away keys only so that
// moto can tell the service from the credential scope.
std::string iam_call(ci::http::Client& http, const std::string& endpoint, const std::string& body) {
    ci::http::Request request;
    request.method = "POST";
    request.scheme = "http";
    request.host = endpoint.substr(std::string("http://").size());
    request.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    request.body = body + "&Version=2010-05-08";
    ci::aws::SigningParams params;
    params.region = "us-east-1";
    params.service = "iam";
    params.time = std::chrono::system_clock::now();
    auto signature = ci::aws::sign(request, {"AKIAUNAUTHENTICATED", "unauthenticated", ""}, params);
    REQUIRE_OK(signature);
    auto response = http.send(ci::aws::apply(request, *signature));
    REQUIRE_OK(response);
    INFO(response->body);
    REQUIRE(response->status == 200);
    return response->body;
}

std::optional<Moto> start_moto() {
    const auto program = moto_program();
    if (!program) {
        ci::test::skip("moto_server not found (LIBCI_MOTO_SERVER unset, not in PATH; "
                       "scripts/test.sh tries pip install 'moto[server]')");
        return std::nullopt;
    }
    Moto moto;
    moto.process = std::make_unique<ci::test::BackgroundProcess>(
        std::vector<std::string>{*program, "-H", "127.0.0.1", "-p", "0"},
        std::map<std::string, std::string>{{"INITIAL_NO_AUTH_ACTION_COUNT", "3"}});
    auto ready =
        moto.process->wait_for_line(std::regex(R"(Running on (http://127\.0\.0\.1:\d+))"), 60s);
    INFO("moto_server said: " << moto.process->output());
    REQUIRE(ready.has_value());
    moto.endpoint = (*ready)[1];

    auto http = http_client();
    iam_call(*http, moto.endpoint, "Action=CreateUser&UserName=libci");
    const std::string keys =
        iam_call(*http, moto.endpoint, "Action=CreateAccessKey&UserName=libci");
    const std::string policy =
        R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]})";
    iam_call(*http,
             moto.endpoint,
             "Action=PutUserPolicy&UserName=libci&PolicyName=all&PolicyDocument=" +
                 ci::http::uri_encode(policy));
    pugi::xml_document document;
    REQUIRE(document.load_string(keys.c_str()));
    const auto key =
        document.child("CreateAccessKeyResponse").child("CreateAccessKeyResult").child("AccessKey");
    moto.credentials.access_key_id = key.child_value("AccessKeyId");
    moto.credentials.secret_access_key = key.child_value("SecretAccessKey");
    REQUIRE_FALSE(moto.credentials.access_key_id.empty());
    return moto;
}

ci::aws::S3Client s3_client(const std::string& endpoint, const ci::aws::Credentials& credentials) {
    return ci::aws::S3Client(http_client(),
                             ci::aws::make_static_credentials(credentials, "test"),
                             ci::SystemClock::instance(),
                             ci::aws::S3Endpoint{"us-east-1", endpoint, {}});
}

ci::aws::Ec2Client ec2_client(const std::string& endpoint,
                              const ci::aws::Credentials& credentials) {
    return ci::aws::Ec2Client(http_client(),
                              ci::aws::make_static_credentials(credentials, "test"),
                              ci::SystemClock::instance(),
                              ci::aws::Ec2Endpoint{"us-east-1", endpoint});
}

// A file of `size` bytes that differ from part to part (a part sent twice or out of order would
// show).
std::filesystem::path patterned_file(const std::filesystem::path& path, std::size_t size) {
    std::string content(size, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) {
        content[i] = static_cast<char>((i * 31 + i / 4096) % 251);
    }
    return ci::test::write_file(path, content);
}

std::string read_all(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The multipart uploads S3 still holds for `bucket` (ListMultipartUploads), as its XML.
std::string list_multipart_uploads(const std::string& endpoint,
                                   const ci::aws::Credentials& credentials,
                                   const std::string& bucket) {
    auto request =
        ci::aws::make_s3_request(ci::aws::S3Endpoint{"us-east-1", endpoint, {}}, "GET", bucket, "");
    REQUIRE_OK(request);
    request->query = "uploads";
    ci::aws::SigningParams params;
    params.region = "us-east-1";
    params.service = "s3";
    params.time = std::chrono::system_clock::now();
    params.normalize_path = false;
    params.double_uri_encode = false;
    params.add_content_sha256_header = true;
    auto signature = ci::aws::sign(*request, credentials, params);
    REQUIRE_OK(signature);
    auto response = http_client()->send(ci::aws::apply(*request, *signature));
    REQUIRE_OK(response);
    INFO(response->body);
    REQUIRE(response->status == 200);
    return response->body;
}

} // namespace

TEST_CASE("aws servers: S3 against moto_server, which checks every signature") {
    auto moto = start_moto();
    if (!moto) {
        return;
    }
    auto s3 = s3_client(moto->endpoint, moto->credentials);
    REQUIRE_OK(s3.create_bucket("wheels"));

    ci::aws::PutObjectInput input;
    input.bucket = "wheels";
    input.key = "fedora20-x86_64/pkg-1.0-py3-none-any.whl";
    input.body = "wheel bytes";
    input.content_type = "application/python+wheel";
    input.acl = "public-read";
    input.cache_control = "max-age=60";
    input.metadata = {{"sha256", "0123abcd"}};
    REQUIRE_OK(s3.put_object(input));

    auto head = s3.head_object("wheels", input.key);
    REQUIRE_OK(head);
    REQUIRE(head->has_value());
    CHECK((*head)->size == input.body.size());
    CHECK((*head)->content_type == "application/python+wheel");
    CHECK((*head)->metadata.at("sha256") == "0123abcd");

    auto object = s3.get_object("wheels", input.key);
    REQUIRE_OK(object);
    REQUIRE(object->has_value());
    CHECK((*object)->body == "wheel bytes");

    SUBCASE("a streamed file arrives whole") {
        ci::test::TempDir dir;
        std::string content(3 << 20, '\0');
        for (std::size_t i = 0; i < content.size(); ++i) {
            content[i] = static_cast<char>(i * 7 % 256);
        }
        ci::aws::PutObjectInput file_input;
        file_input.bucket = "wheels";
        file_input.key = "big.bin";
        file_input.body_file = ci::test::write_file(dir / "big.bin", content).string();
        REQUIRE_OK(s3.put_object(file_input));
        auto big = s3.get_object("wheels", "big.bin");
        REQUIRE_OK(big);
        REQUIRE(big->has_value());
        CHECK((*big)->body == content);
    }
    SUBCASE("a file larger than a part goes in signed parts; a stop aborts the upload") {
        ci::test::TempDir dir;
        const auto path = patterned_file(dir / "big.bin", (11U << 20U) + 123);
        std::vector<std::uint64_t> progress;
        ci::aws::UploadFileInput file;
        file.bucket = "wheels";
        file.key = "dist/big.bin";
        file.path = path.string();
        file.part_size = ci::aws::min_part_size;
        file.progress = [&](std::uint64_t sent) {
            progress.push_back(sent);
            return true;
        };
        auto uploaded = s3.upload_file(file);
        REQUIRE_OK(uploaded);
        CHECK(uploaded->parts == 3);
        CHECK(uploaded->size == (11U << 20U) + 123);
        CHECK(progress == std::vector<std::uint64_t>{5U << 20U, 10U << 20U, (11U << 20U) + 123});
        auto back = s3.get_object("wheels", "dist/big.bin");
        REQUIRE_OK(back);
        REQUIRE(back->has_value());
        CHECK((*back)->body == read_all(path));
        // A multipart object's ETag is "<md5 of the parts' md5s>-<parts>".
        CHECK((*back)->head.etag.ends_with("-3"));

        file.key = "dist/stopped.bin";
        file.progress = [](std::uint64_t) { return false; };
        auto stopped = s3.upload_file(file);
        REQUIRE_FALSE(stopped.has_value());
        CHECK(stopped.error().code == ci::ErrorCode::Cancelled);
        CHECK(stopped.error().message.find("aborting") == std::string::npos);
        auto none = s3.head_object("wheels", "dist/stopped.bin");
        REQUIRE_OK(none);
        CHECK_FALSE(none->has_value());
        // Aborted: S3 keeps none of its parts.
        CHECK(
            list_multipart_uploads(moto->endpoint, moto->credentials, "wheels").find("<Upload>") ==
            std::string::npos);

        file.key = "small.bin";
        file.path = patterned_file(dir / "small.bin", 1000).string();
        file.progress = {};
        auto small = s3.upload_file(file);
        REQUIRE_OK(small);
        CHECK(small->parts == 0);
    }
    SUBCASE("listing, deleting, and a missing object") {
        // No '/' in the prefix: moto rejects correctly signed queries holding %2F (see
        // TOOLCHAIN.md); s3rver covers prefixes with slashes below.
        auto listed = s3.list_objects("wheels", "fedora20");
        REQUIRE_OK(listed);
        REQUIRE(listed->size() == 1);
        CHECK((*listed)[0].key == input.key);
        REQUIRE_OK(s3.delete_object("wheels", input.key));
        auto gone = s3.head_object("wheels", input.key);
        REQUIRE_OK(gone);
        CHECK_FALSE(gone->has_value());
        auto missing = s3.get_object("wheels", "never-written");
        REQUIRE_OK(missing);
        CHECK_FALSE(missing->has_value());
    }
    SUBCASE("a wrong secret is refused with SignatureDoesNotMatch") {
        auto wrong = moto->credentials;
        wrong.secret_access_key += "x";
        auto bad = s3_client(moto->endpoint, wrong);
        auto status = bad.put_object(input);
        REQUIRE_FALSE(status.has_value());
        CHECK(status.error().code == ci::ErrorCode::AwsService);
        CHECK(
            status.error().message.find("PUT s3://wheels/fedora20-x86_64/pkg-1.0-py3-none-any.whl: "
                                        "403 SignatureDoesNotMatch") == 0);
    }
}

TEST_CASE("aws servers: EC2 against moto_server") {
    auto moto = start_moto();
    if (!moto) {
        return;
    }
    auto ec2 = ec2_client(moto->endpoint, moto->credentials);
    auto images = ec2.describe_images({"amazon"}, {});
    REQUIRE_OK(images);
    REQUIRE_FALSE(images->empty());
    const std::string ami = (*images)[0].image_id;

    ci::aws::RunInstancesInput input;
    input.image_id = ami;
    input.instance_type = "c3.large";
    input.count = 2;
    input.client_token = "libci-test-token-1";
    input.user_data = "#cloud-config\n";
    input.shutdown_behavior = "terminate";
    input.tags = {{"libci-master", "ci.example.org"}, {"libci-class", "aws/centos-7"}};
    auto launched = ec2.run_instances(input);
    REQUIRE_OK(launched);
    REQUIRE(launched->size() == 2);
    CHECK((*launched)[0].tags.at("libci-master") == "ci.example.org");

    auto found = ec2.describe_instances({{"tag:libci-master", {"ci.example.org"}},
                                         {"instance-state-name", {"pending", "running"}}});
    REQUIRE_OK(found);
    CHECK(found->size() == 2);
    auto none = ec2.describe_instances({{"tag:libci-master", {"elsewhere"}}});
    REQUIRE_OK(none);
    CHECK(none->empty());

    REQUIRE_OK(ec2.create_tags({(*launched)[0].instance_id}, {{"libci-build", "42"}}));
    auto tagged = ec2.describe_instances({{"tag:libci-build", {"42"}}});
    REQUIRE_OK(tagged);
    REQUIRE(tagged->size() == 1);
    CHECK((*tagged)[0].instance_id == (*launched)[0].instance_id);

    auto terminated =
        ec2.terminate_instances({(*launched)[0].instance_id, (*launched)[1].instance_id});
    REQUIRE_OK(terminated);
    REQUIRE(terminated->size() == 2);
    CHECK((*terminated)[0].current_state != "running");

    SUBCASE("an unknown instance is an AwsService error with EC2's code") {
        auto bad = ec2.terminate_instances({"i-0000000000000dead"});
        REQUIRE_FALSE(bad.has_value());
        CHECK(bad.error().code == ci::ErrorCode::AwsService);
        CHECK(
            bad.error().message.starts_with("TerminateInstances: 400 InvalidInstanceID.NotFound"));
    }
    SUBCASE("a wrong secret is refused with AuthFailure") {
        auto wrong = moto->credentials;
        wrong.secret_access_key += "x";
        auto bad = ec2_client(moto->endpoint, wrong);
        auto result = bad.describe_instances({});
        REQUIRE_FALSE(result.has_value());
        INFO(result.error().message);
        CHECK(result.error().message.find("AuthFailure") != std::string::npos);
    }
}

TEST_CASE("aws servers: S3 against s3rver, with listings over several pages") {
    const auto s3rver = environment("LIBCI_S3RVER");
    const auto node = ci::test::find_program("node");
    if (!s3rver || !node) {
        ci::test::skip(
            "s3rver not found (LIBCI_S3RVER unset: scripts/test.sh installs it with npm)");
        return;
    }
    ci::test::TempDir data;
    // Node 20 needs the legacy OpenSSL provider for s3rver's ListObjectsV2 tokens.
    ci::test::BackgroundProcess server({*node,
                                        "--openssl-legacy-provider",
                                        *s3rver,
                                        "-d",
                                        data.path().string(),
                                        "-a",
                                        "127.0.0.1",
                                        "-p",
                                        "0"});
    auto ready = server.wait_for_line(std::regex(R"(listening on (127\.0\.0\.1:\d+))"), 60s);
    INFO("s3rver said: " << server.output());
    REQUIRE(ready.has_value());
    const std::string endpoint = "http://" + std::string((*ready)[1]);
    auto s3 = s3_client(endpoint, {"S3RVER", "S3RVER", ""});
    REQUIRE_OK(s3.create_bucket("wheelhouse"));

    constexpr int count = 1050;
    for (int i = 0; i < count; ++i) {
        ci::aws::PutObjectInput input;
        input.bucket = "wheelhouse";
        input.key = fmt::format("fedora20-x86_64/pkg{:04}-1.0-py3-none-any.whl", i);
        input.body = std::to_string(i);
        REQUIRE_OK(s3.put_object(input));
    }
    REQUIRE_OK(s3.put_object({"wheelhouse", "other/x", "x", "", "", "", "", {}}));

    auto first = s3.list_objects_page("wheelhouse", "fedora20-x86_64/", "");
    REQUIRE_OK(first);
    CHECK(first->objects.size() == 1000);
    CHECK(first->truncated);
    auto all = s3.list_objects("wheelhouse", "fedora20-x86_64/");
    REQUIRE_OK(all);
    REQUIRE(all->size() == count);
    CHECK(all->front().key == "fedora20-x86_64/pkg0000-1.0-py3-none-any.whl");
    CHECK(all->back().key == "fedora20-x86_64/pkg1049-1.0-py3-none-any.whl");

    SUBCASE("multipart uploads, and a missing bucket named with S3's code") {
        const auto path = patterned_file(data.path() / ".." / "s3rver-big.bin", (12U << 20U) + 7);
        ci::aws::UploadFileInput file;
        file.bucket = "wheelhouse";
        file.key = "docs/a b/big.bin";
        file.path = path.string();
        file.part_size = ci::aws::min_part_size;
        auto uploaded = s3.upload_file(file);
        REQUIRE_OK(uploaded);
        CHECK(uploaded->parts == 3);
        auto back = s3.get_object("wheelhouse", "docs/a b/big.bin");
        REQUIRE_OK(back);
        REQUIRE(back->has_value());
        CHECK((*back)->body == read_all(path));

        file.bucket = "missing";
        auto missing = s3.upload_file(file);
        REQUIRE_FALSE(missing.has_value());
        CHECK(missing.error().message.starts_with(
            "POST s3://missing/docs/a b/big.bin (CreateMultipartUpload): 404 NoSuchBucket"));
        std::filesystem::remove(path);
    }
}
