"""Read AWS IoT state with plain boto3, independently of the collection's code.

Usage: iot_readback.py OPERATION '{"boto3": "kwargs"}'
Prints the response as JSON, or {"__error__": "<AWS error code>"}. Endpoint and region come
from IOT_READBACK_ENDPOINT / AWS_DEFAULT_REGION (the integration harness sets them).
"""

import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def main():
    operation = sys.argv[1]
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    client = boto3.client(
        "iot",
        endpoint_url=os.environ["IOT_READBACK_ENDPOINT"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    try:
        result = getattr(client, operation)(**kwargs)
    except ClientError as e:
        result = {"__error__": e.response["Error"]["Code"]}
    result.pop("ResponseMetadata", None)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
