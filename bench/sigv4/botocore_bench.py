"""Signatures per second of botocore's SigV4Auth on the same two requests as sigv4_bench.cpp.

Prints "name value unit" lines, like sigv4_bench.
"""
import sys
import time
import types

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def ec2_request():
    return AWSRequest(
        method="POST",
        url="https://ec2.us-west-2.amazonaws.com/",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        data="Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Alibci&"
        "Filter.1.Value.1=worker",
    )


# What an S3 client configured like libci's passes: no payload signing (UNSIGNED-PAYLOAD).
S3_CONTEXT = {"client_config": types.SimpleNamespace(s3={"payload_signing_enabled": False})}


def s3_request():
    request = AWSRequest(
        method="PUT",
        url="https://clusterhq-wheelhouse.s3.us-west-2.amazonaws.com/"
        "fedora20-x86_64/Flocker-1.0.0-py2-none-any.whl",
        headers={
            "Content-Type": "application/python+wheel",
            "x-amz-acl": "public-read",
            "Content-Length": "1048576",
        },
    )
    request.context.update(S3_CONTEXT)
    return request


def per_second(seconds, request, signer):
    """Best of five rounds, as sigv4_bench measures. One request signed again and again, as
    sigv4_bench does: add_auth replaces the X-Amz-Date and Authorization it added before, so
    only signing is timed, not building the request."""
    best = 0.0
    for _ in range(5):
        calls = 0
        start = time.perf_counter()
        deadline = start + seconds / 5
        now = start
        while now < deadline:
            for _ in range(100):
                signer.add_auth(request)
            calls += 100
            now = time.perf_counter()
        best = max(best, calls / (now - start))
    return best


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    ec2 = SigV4Auth(CREDENTIALS, "ec2", "us-west-2")
    s3 = S3SigV4Auth(CREDENTIALS, "s3", "us-west-2")
    # Sanity: S3 over HTTPS signs UNSIGNED-PAYLOAD, like the libci case.
    probe = s3_request()
    s3.add_auth(probe)
    assert probe.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    print("ec2_describe_instances.botocore %.0f signatures/s" % per_second(seconds, ec2_request(), ec2))
    print("s3_put_object.botocore %.0f signatures/s" % per_second(seconds, s3_request(), s3))


if __name__ == "__main__":
    main()
