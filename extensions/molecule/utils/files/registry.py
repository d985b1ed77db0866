"""The registry seen with plain boto3 (none of the collection's code), for the molecule verify.

AWS endpoint and credentials come from the environment, as for any AWS tool (the lab's
AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE, see extensions/molecule/config.yml).

    registry.py check POLICY THING [THING ...]
        JSON per thing: its principals, each with its status and attached policies, and "ok" when
        the thing has exactly one ACTIVE certificate carrying POLICY.
    registry.py observer CERT_PEM CLIENT_ID
        Register CERT_PEM ACTIVE with a policy that lets CLIENT_ID connect, subscribe to `test` and
        receive on it (an independent listener must be allowed like any device).
    registry.py certificate THING
        The id of the thing's (first) certificate.
    registry.py cas
        The registered CA certificates (id -> status) and, per CA, the certificates registered under
        it (ListCertificatesByCA: id -> status).
    registry.py status CERT_ID STATUS
        Set a certificate's status (REVOKED to see a Pi refused).
    registry.py policy-without-subscribe POLICY / registry.py policy-restore POLICY VERSION
        Make a new default version of POLICY without iot:Subscribe (printing the old default version
        id), and set the old default back (deleting the new one).
"""

import json
import sys

import boto3


def iot():
    return boto3.client("iot")


def check(policy, things):
    c, result = iot(), {}
    for thing in things:
        entries = []
        for arn in c.list_thing_principals(thingName=thing)["principals"]:
            cert_id = arn.rsplit("/", 1)[-1]
            status = c.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]
            policies = [p["policyName"] for p in c.list_attached_policies(target=arn)["policies"]]
            entries.append({"arn": arn, "certificate_id": cert_id, "status": status, "policies": policies})
        result[thing] = {
            "principals": entries,
            "ok": len(entries) == 1 and entries[0]["status"] == "ACTIVE" and policy in entries[0]["policies"],
        }
    return result


def observer(cert_path, client_id):
    c = iot()
    pem = open(cert_path).read()
    try:
        arn = c.register_certificate(certificatePem=pem, setAsActive=True)["certificateArn"]
    except c.exceptions.ResourceAlreadyExistsException as e:
        arn = e.response["Error"].get("resourceArn") or next(
            x["certificateArn"] for x in c.list_certificates()["certificates"])
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/{client_id}"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/test"},
        {"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:topic/test"}]}
    name = "molecule-observer"
    try:
        c.create_policy(policyName=name, policyDocument=json.dumps(doc))
    except c.exceptions.ResourceAlreadyExistsException:
        pass
    c.attach_policy(policyName=name, target=arn)
    return {"certificate_arn": arn}


def without_subscribe(policy):
    c = iot()
    current = c.get_policy(policyName=policy)
    doc = json.loads(current["policyDocument"])
    doc["Statement"] = [s for s in doc["Statement"] if "iot:Subscribe" not in json.dumps(s.get("Action"))]
    new = c.create_policy_version(policyName=policy, policyDocument=json.dumps(doc), setAsDefault=True)
    return {"previous": current["defaultVersionId"], "new": new["policyVersionId"]}


def restore(policy, version):
    c = iot()
    new = c.get_policy(policyName=policy)["defaultVersionId"]
    c.set_default_policy_version(policyName=policy, policyVersionId=version)
    c.delete_policy_version(policyName=policy, policyVersionId=new)
    return {"default": version}


def cas():
    c = iot()
    listed = {ca["certificateId"]: ca["status"] for ca in c.list_ca_certificates()["certificates"]}
    under = {ca: {x["certificateId"]: x["status"]
                  for x in c.list_certificates_by_ca(caCertificateId=ca)["certificates"]} for ca in listed}
    return {"ca_certificates": listed, "certificates_by_ca": under}


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "check":
        out = check(args[0], args[1:])
    elif cmd == "observer":
        out = observer(args[0], args[1])
    elif cmd == "certificate":
        out = {"certificate_id": iot().list_thing_principals(thingName=args[0])["principals"][0].rsplit("/", 1)[-1]}
    elif cmd == "cas":
        out = cas()
    elif cmd == "status":
        iot().update_certificate(certificateId=args[0], newStatus=args[1])
        out = {"status": args[1]}
    elif cmd == "policy-without-subscribe":
        out = without_subscribe(args[0])
    elif cmd == "policy-restore":
        out = restore(args[0], args[1])
    else:
        sys.exit(f"unknown command {cmd}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
