#pragma once

/// \file
/// Amazon EC2 through its Query API (version 2016-11-15), sent as POST form bodies as the AWS
/// SDKs send them: request builders and XML parsers (pure), and Ec2Client, which composes
/// build -> sign -> send -> parse.
///
/// Errors are typed from the XML error body: ErrorCode::AwsService with
/// "RunInstances: 400 InvalidAMIID.NotFound: The image id '[ami-1]' does not exist (request id
/// ...)". Throttling (RequestLimitExceeded) is retried by the HTTP client with backoff and jitter.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ci/aws/credentials.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/http/client.h>
#include <ci/http/request.h>

namespace ci::aws {

/// The Query API version every request names.
inline constexpr std::string_view ec2_api_version = "2016-11-15";

/// Where EC2 is.
struct Ec2Endpoint {
    std::string region = "us-east-1";
    /// An override, e.g. "http://127.0.0.1:5000" (moto); empty: https://ec2.<region>.amazonaws.com
    std::string endpoint_url;
};

/// Query parameters in order, names as the API spells them ("Filter.1.Name").
using QueryParameters = std::vector<std::pair<std::string, std::string>>;

/// A filter of Describe* calls: instances whose `name` has one of `values`.
struct Filter {
    std::string name; ///< e.g. "tag:libci-master", "instance-state-name"
    std::vector<std::string> values;
};

/// What RunInstances launches.
struct RunInstancesInput {
    std::string image_id;
    std::string instance_type;
    int count = 1; ///< MinCount = MaxCount = count
    /// Idempotency: the same token launches once, however often the call is retried.
    std::string client_token;
    std::string user_data; ///< raw; base64-encoded on the wire
    std::string subnet_id;
    std::vector<std::string> security_group_ids;
    std::string iam_instance_profile; ///< a name, or an ARN ("arn:...")
    std::string key_name;
    /// Present: a one-time spot request with this maximum price (USD per hour, as text).
    std::optional<std::string> spot_max_price;
    std::string shutdown_behavior = "terminate"; ///< InstanceInitiatedShutdownBehavior
    std::map<std::string, std::string> tags;     ///< put on the instance and its volumes at launch
};

/// What EC2 says about an instance.
struct Instance {
    std::string instance_id;
    std::string image_id;
    std::string instance_type;
    std::string state; ///< pending, running, shutting-down, terminated, stopping, stopped
    std::string private_ip;
    std::string public_ip;
    std::string launch_time;
    std::string lifecycle; ///< "spot" for spot instances, empty for on-demand
    std::map<std::string, std::string> tags;
};

/// One page of DescribeInstances.
struct InstancesPage {
    std::vector<Instance> instances;
    std::string next_token; ///< empty on the last page
};

/// What TerminateInstances reports for one instance.
struct StateChange {
    std::string instance_id;
    std::string previous_state;
    std::string current_state;
};

/// An AMI.
struct Image {
    std::string image_id;
    std::string name;
    std::string state;
    std::string creation_date; ///< ISO 8601, sortable
    std::map<std::string, std::string> tags;
};

// Pure builders.

/// POST / with the form body "Action=<action>&Version=2016-11-15&<parameters>", encoded.
[[nodiscard]] Result<http::Request> make_ec2_request(const Ec2Endpoint& endpoint,
                                                     std::string_view action,
                                                     const QueryParameters& parameters);
/// The parameters of RunInstances for `input` (TagSpecifications, spot options, ...).
[[nodiscard]] QueryParameters run_instances_parameters(const RunInstancesInput& input);
/// Filter.N.Name / Filter.N.Value.M parameters.
void append_filters(QueryParameters& parameters, const std::vector<Filter>& filters);

// Pure parsers: each fails with AwsService when the document is not the expected answer.

[[nodiscard]] Result<std::vector<Instance>> parse_run_instances(std::string_view xml);
[[nodiscard]] Result<InstancesPage> parse_describe_instances(std::string_view xml);
[[nodiscard]] Result<std::vector<StateChange>> parse_terminate_instances(std::string_view xml);
/// The answer of TerminateInstances, StopInstances or StartInstances, whose root element is
/// `root` ("StopInstancesResponse").
[[nodiscard]] Result<std::vector<StateChange>> parse_state_changes(std::string_view xml,
                                                                   const char* root);
[[nodiscard]] Result<std::vector<Image>> parse_describe_images(std::string_view xml);
/// The Error for a failed response: "<action>: <status> <Code>: <Message> (request id <id>)".
[[nodiscard]] Error ec2_error(std::string_view action, const http::Response& response);
/// True for the throttling answers the AWS SDKs retry: RequestLimitExceeded, Throttling,
/// ThrottlingException, SlowDown, and any 503.
[[nodiscard]] bool is_throttling(const http::Response& response);

/// The retry policy for AWS clients: throttling (is_throttling) and 500/502/504 answers, with
/// the http module's exponential backoff and full jitter. Give it to http::make_client.
[[nodiscard]] http::RetryPolicy aws_retry_policy();

/// EC2 through an HTTP client.
class Ec2Client {
public:
    Ec2Client(std::shared_ptr<http::Client> http,
              std::shared_ptr<CredentialsProvider> credentials,
              const Clock& clock,
              Ec2Endpoint endpoint);

    [[nodiscard]] Result<std::vector<Instance>> run_instances(const RunInstancesInput& input);
    /// Every instance matching the filters (and ids, when given), following NextToken.
    [[nodiscard]] Result<std::vector<Instance>>
    describe_instances(const std::vector<Filter>& filters,
                       const std::vector<std::string>& instance_ids = {});
    [[nodiscard]] Result<std::vector<StateChange>>
    terminate_instances(const std::vector<std::string>& instance_ids);
    /// Stops EBS-backed instances (their disks stay; a stopped instance costs only storage).
    [[nodiscard]] Result<std::vector<StateChange>>
    stop_instances(const std::vector<std::string>& instance_ids);
    /// Starts stopped instances again.
    [[nodiscard]] Result<std::vector<StateChange>>
    start_instances(const std::vector<std::string>& instance_ids);
    /// Images owned by `owners` (e.g. {"self"}) that match the filters.
    [[nodiscard]] Result<std::vector<Image>> describe_images(const std::vector<std::string>& owners,
                                                             const std::vector<Filter>& filters);
    [[nodiscard]] Status create_tags(const std::vector<std::string>& resource_ids,
                                     const std::map<std::string, std::string>& tags);

private:
    Result<std::string> call(std::string_view action, const QueryParameters& parameters);
    Result<std::vector<StateChange>> change_states(std::string_view action,
                                                   const std::vector<std::string>& instance_ids);

    std::shared_ptr<http::Client> http_;
    std::shared_ptr<CredentialsProvider> credentials_;
    const Clock& clock_;
    Ec2Endpoint endpoint_;
};

} // namespace ci::aws
