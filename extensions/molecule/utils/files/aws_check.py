"""Independent check of the registry with plain boto3 (none of the collection's code).

Usage: aws_check.py LAB_JSON POLICY THING [THING ...]
Prints JSON: per thing, its principals, and per principal the certificate status and the
attached policy names.
"""

import json
import sys

import boto3


def main():
    lab = json.load(open(sys.argv[1]))
    policy = sys.argv[2]
    aws = lab["aws"]
    iot = boto3.client(
        "iot",
        endpoint_url=aws["endpoint_url"],
        region_name=aws["region"],
        aws_access_key_id=aws["access_key"],
        aws_secret_access_key=aws["secret_key"],
    )
    result = {}
    for thing in sys.argv[3:]:
        principals = iot.list_thing_principals(thingName=thing)["principals"]
        entries = []
        for arn in principals:
            cert_id = arn.rsplit("/", 1)[-1]
            status = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]
            policies = [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]]
            entries.append({"arn": arn, "certificate_id": cert_id, "status": status, "policies": policies})
        result[thing] = {
            "principals": entries,
            "ok": len(entries) == 1 and entries[0]["status"] == "ACTIVE" and policy in entries[0]["policies"],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
