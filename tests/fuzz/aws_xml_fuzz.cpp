// The S3 and EC2 answers' parsers (aws/s3, aws/ec2), each on the same bytes: whatever a server,
// or something in between, sends back.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ci/aws/ec2.h>
#include <ci/aws/s3.h>

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view xml(reinterpret_cast<const char*>(data), size);
    (void)ci::aws::parse_list_objects_v2(xml);
    (void)ci::aws::parse_run_instances(xml);
    (void)ci::aws::parse_describe_instances(xml);
    (void)ci::aws::parse_terminate_instances(xml);
    (void)ci::aws::parse_describe_images(xml);
    return 0;
}
