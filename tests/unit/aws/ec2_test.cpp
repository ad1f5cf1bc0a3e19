// EC2's pure parts: Query API form bodies and XML answers.

#include <string>

#include <doctest/doctest.h>

#include <ci/aws/ec2.h>
#include <ci/core/crypto.h>

#include "support/require_ok.h"

namespace {

std::string parameter(const ci::aws::QueryParameters& parameters, const std::string& name) {
    for (const auto& [key, value] : parameters) {
        if (key == name) {
            return value;
        }
    }
    return "<absent>";
}

} // namespace

TEST_CASE("ec2: requests are POST form bodies with Action and Version") {
    auto request =
        ci::aws::make_ec2_request(ci::aws::Ec2Endpoint{"us-west-2", ""},
                                  "DescribeInstances",
                                  {{"Filter.1.Name", "tag:libci"}, {"Filter.1.Value.1", "a b/c"}});
    REQUIRE_OK(request);
    CHECK(request->method == "POST");
    CHECK(request->url() == "https://ec2.us-west-2.amazonaws.com/");
    CHECK(*ci::http::find_header(request->headers, "content-type") ==
          "application/x-www-form-urlencoded; charset=utf-8");
    CHECK(request->body == "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Alibci&"
                           "Filter.1.Value.1=a%20b%2Fc");
    auto local = ci::aws::make_ec2_request(
        ci::aws::Ec2Endpoint{"us-east-1", "http://127.0.0.1:5000"}, "DescribeImages", {});
    REQUIRE_OK(local);
    CHECK(local->url() == "http://127.0.0.1:5000/");
}

TEST_CASE("ec2: RunInstances parameters") {
    ci::aws::RunInstancesInput input;
    input.image_id = "ami-123";
    input.instance_type = "c3.large";
    input.count = 2;
    input.client_token = "libci-7f3a";
    input.user_data = "#cloud-config\n";
    input.subnet_id = "subnet-1";
    input.security_group_ids = {"sg-1", "sg-2"};
    input.iam_instance_profile = "arn:aws:iam::1:instance-profile/worker";
    input.spot_max_price = "0.10";
    input.tags = {{"libci-master", "ci.example.org"}, {"Name", "aws/centos-7/0"}};
    const auto parameters = ci::aws::run_instances_parameters(input);
    CHECK(parameter(parameters, "ImageId") == "ami-123");
    CHECK(parameter(parameters, "MinCount") == "2");
    CHECK(parameter(parameters, "MaxCount") == "2");
    CHECK(parameter(parameters, "ClientToken") == "libci-7f3a");
    CHECK(parameter(parameters, "UserData") == ci::crypto::base64_encode("#cloud-config\n"));
    CHECK(parameter(parameters, "SecurityGroupId.2") == "sg-2");
    CHECK(parameter(parameters, "IamInstanceProfile.Arn") ==
          "arn:aws:iam::1:instance-profile/worker");
    CHECK(parameter(parameters, "IamInstanceProfile.Name") == "<absent>");
    CHECK(parameter(parameters, "InstanceMarketOptions.MarketType") == "spot");
    CHECK(parameter(parameters, "InstanceMarketOptions.SpotOptions.MaxPrice") == "0.10");
    CHECK(parameter(parameters, "InstanceInitiatedShutdownBehavior") == "terminate");
    CHECK(parameter(parameters, "TagSpecification.1.ResourceType") == "instance");
    CHECK(parameter(parameters, "TagSpecification.1.Tag.1.Key") == "Name");
    CHECK(parameter(parameters, "TagSpecification.1.Tag.2.Value") == "ci.example.org");
    CHECK(parameter(parameters, "TagSpecification.2.ResourceType") == "volume");

    input.spot_max_price.reset();
    input.iam_instance_profile = "worker";
    const auto on_demand = ci::aws::run_instances_parameters(input);
    CHECK(parameter(on_demand, "InstanceMarketOptions.MarketType") == "<absent>");
    CHECK(parameter(on_demand, "IamInstanceProfile.Name") == "worker");
}

TEST_CASE("ec2: filters") {
    ci::aws::QueryParameters parameters;
    ci::aws::append_filters(
        parameters,
        {{"tag:libci-master", {"ci"}}, {"instance-state-name", {"pending", "running"}}});
    CHECK(parameter(parameters, "Filter.1.Name") == "tag:libci-master");
    CHECK(parameter(parameters, "Filter.1.Value.1") == "ci");
    CHECK(parameter(parameters, "Filter.2.Value.2") == "running");
}

TEST_CASE("ec2: answers are parsed") {
    const std::string run = R"(<?xml version="1.0" encoding="UTF-8"?>
<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r1</requestId><reservationId>r-1</reservationId><ownerId>123</ownerId>
  <instancesSet><item>
    <instanceId>i-0abc</instanceId><imageId>ami-123</imageId>
    <instanceState><code>0</code><name>pending</name></instanceState>
    <privateIpAddress>10.0.0.5</privateIpAddress><instanceType>c3.large</instanceType>
    <launchTime>2026-11-24T10:00:00.000Z</launchTime><instanceLifecycle>spot</instanceLifecycle>
    <tagSet><item><key>Name</key><value>aws/centos-7/0</value></item></tagSet>
  </item></instancesSet>
</RunInstancesResponse>)";
    auto launched = ci::aws::parse_run_instances(run);
    REQUIRE_OK(launched);
    REQUIRE(launched->size() == 1);
    CHECK((*launched)[0].instance_id == "i-0abc");
    CHECK((*launched)[0].state == "pending");
    CHECK((*launched)[0].lifecycle == "spot");
    CHECK((*launched)[0].private_ip == "10.0.0.5");
    CHECK((*launched)[0].tags.at("Name") == "aws/centos-7/0");

    const std::string describe = R"(<DescribeInstancesResponse>
  <reservationSet>
    <item><instancesSet><item><instanceId>i-1</instanceId><instanceState><name>running</name></instanceState></item>
                        <item><instanceId>i-2</instanceId><instanceState><name>stopped</name></instanceState></item></instancesSet></item>
    <item><instancesSet><item><instanceId>i-3</instanceId></item></instancesSet></item>
  </reservationSet><nextToken>page2</nextToken>
</DescribeInstancesResponse>)";
    auto page = ci::aws::parse_describe_instances(describe);
    REQUIRE_OK(page);
    REQUIRE(page->instances.size() == 3);
    CHECK(page->instances[1].state == "stopped");
    CHECK(page->next_token == "page2");

    auto terminated = ci::aws::parse_terminate_instances(R"(<TerminateInstancesResponse>
  <instancesSet><item><instanceId>i-1</instanceId>
    <currentState><code>32</code><name>shutting-down</name></currentState>
    <previousState><code>16</code><name>running</name></previousState></item></instancesSet>
</TerminateInstancesResponse>)");
    REQUIRE_OK(terminated);
    REQUIRE(terminated->size() == 1);
    CHECK((*terminated)[0].previous_state == "running");
    CHECK((*terminated)[0].current_state == "shutting-down");
    auto stopped = ci::aws::parse_state_changes(R"(<StopInstancesResponse>
  <instancesSet><item><instanceId>i-2</instanceId>
    <currentState><code>64</code><name>stopping</name></currentState>
    <previousState><code>16</code><name>running</name></previousState></item></instancesSet>
</StopInstancesResponse>)",
                                                "StopInstancesResponse");
    REQUIRE_OK(stopped);
    REQUIRE(stopped->size() == 1);
    CHECK((*stopped)[0].current_state == "stopping");
    // Another action's answer is not taken for this one.
    CHECK_FALSE(ci::aws::parse_state_changes("<StartInstancesResponse/>", "StopInstancesResponse")
                    .has_value());

    auto images = ci::aws::parse_describe_images(R"(<DescribeImagesResponse><imagesSet>
  <item><imageId>ami-1</imageId><name>buildslave-centos-7</name><imageState>available</imageState>
    <creationDate>2026-01-01T00:00:00.000Z</creationDate>
    <tagSet><item><key>production</key><value>true</value></item></tagSet></item>
</imagesSet></DescribeImagesResponse>)");
    REQUIRE_OK(images);
    REQUIRE(images->size() == 1);
    CHECK((*images)[0].tags.at("production") == "true");

    CHECK_FALSE(ci::aws::parse_run_instances("<DescribeInstancesResponse/>").has_value());
    CHECK_FALSE(ci::aws::parse_describe_images("<").has_value());
}

TEST_CASE("ec2: errors are typed from the error document, and throttling is recognised") {
    ci::http::Response response;
    response.status = 400;
    response.body = R"(<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id '[ami-1]' does not exist</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>)";
    const auto error = ci::aws::ec2_error("RunInstances", response);
    CHECK(error.code == ci::ErrorCode::AwsService);
    CHECK(error.message == "RunInstances: 400 InvalidAMIID.NotFound: The image id '[ami-1]' does "
                           "not exist (request id ea966190-f9aa-478e-9ede-example)");
    CHECK_FALSE(ci::aws::is_throttling(response));

    response.status = 503;
    response.body = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request "
                    "limit exceeded.</Message></Error></Errors></Response>";
    CHECK(ci::aws::is_throttling(response));
    response.status = 400;
    response.body = "<Response><Errors><Error><Code>Throttling</Code></Error></Errors></Response>";
    CHECK(ci::aws::is_throttling(response));
    const auto policy = ci::aws::aws_retry_policy();
    CHECK(policy.retryable(response));
    response.status = 401;
    response.body = "<Response><Errors><Error><Code>AuthFailure</Code></Error></Errors></Response>";
    CHECK_FALSE(policy.retryable(response));
}
